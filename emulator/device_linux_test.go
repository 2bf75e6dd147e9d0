package emulator_test

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// makeDevice makes a device node on the host (char or block).
func makeDevice(path string, char bool, major, minor uint32) error {
	mode := uint32(syscall.S_IFBLK)
	if char {
		mode = syscall.S_IFCHR
	}
	return syscall.Mknod(path, mode|0o666, int(unix.Mkdev(major, minor)))
}
