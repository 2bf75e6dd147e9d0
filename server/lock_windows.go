//go:build windows

package server

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes f's exclusive lock without waiting; held reports that
// another process has it. The locked byte is far past the file's text, so
// that others can still read the addresses written in it.
func tryLock(f *os.File) (held bool, err error) {
	ol := &windows.Overlapped{OffsetHigh: 0x40000000}
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return true, nil
	}
	return false, err
}
