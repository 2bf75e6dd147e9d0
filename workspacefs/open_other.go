//go:build !linux

package workspacefs

import (
	"io/fs"
	"os"
	"syscall"
)

// openRegular opens name for reading if it is a regular file, following
// symlinks that stay inside r. Without O_PATH the type can only be checked
// after opening; O_NONBLOCK keeps a FIFO from blocking the open.
func openRegular(r *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	switch {
	case fi.IsDir():
		f.Close()
		return nil, nil, ErrIsDir
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, nil, ErrNotRegular
	}
	return f, fi, nil
}

// oDirectory is 0 where the flag is not portable: the folders opened with it
// are the roots' own ".", folders by construction.
const oDirectory = 0
