package workspacefs

import (
	"io/fs"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds how many final symlinks openRegular follows.
const maxSymlinks = 40

// openRegular opens name for reading if it is a regular file, following
// symlinks that stay inside r.
//
// The type is checked before anything is opened for reading: an O_PATH
// handle (os.Root adds O_NOFOLLOW) pins the inode without opening it, so a
// device node a sandbox made (a disk, a watchdog) is never opened, a FIFO
// never blocks, and a swap after the check changes nothing because the
// readable handle is reopened from that same inode through /proc/self/fd.
func openRegular(r *os.Root, name string) (*os.File, fs.FileInfo, error) {
	for range maxSymlinks {
		pf, err := r.OpenFile(name, unix.O_PATH, 0)
		if err != nil {
			return nil, nil, err
		}
		fi, err := pf.Stat()
		if err != nil {
			pf.Close()
			return nil, nil, err
		}
		switch {
		case fi.Mode().IsRegular():
			f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(pf.Fd())), os.O_RDONLY|unix.O_NOCTTY, 0)
			pf.Close()
			if err != nil {
				return nil, nil, err
			}
			return f, fi, nil
		case fi.IsDir():
			pf.Close()
			return nil, nil, ErrIsDir
		case fi.Mode()&fs.ModeSymlink != 0:
			pf.Close()
			target, err := r.Readlink(name)
			if err != nil {
				return nil, nil, err
			}
			if path.IsAbs(target) {
				// An absolute target names a path of whoever reads the
				// link; on this host that is outside the workspace.
				return nil, nil, ErrOutside
			}
			// The target is read relative to the link's folder; os.Root
			// judges the result when it is opened.
			name = path.Join(path.Dir(name), target)
		default:
			pf.Close()
			return nil, nil, ErrNotRegular
		}
	}
	return nil, nil, ErrLoop
}

// oDirectory makes opening anything but a folder fail.
const oDirectory = unix.O_DIRECTORY
