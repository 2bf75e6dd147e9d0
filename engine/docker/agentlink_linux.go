package docker

import (
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// LinksSupported: a unix socket in a folder the engine mounts reaches a
// container only when both run on one kernel, so only on Linux.
const LinksSupported = true

// listenUnixIn listens on a unix socket named name in dir, which any user
// of the container may connect to (the token is the check). A path too long
// for a socket address is reached through /proc/self/fd.
func listenUnixIn(dir, name string) (net.Listener, error) {
	path := filepath.Join(dir, name)
	_ = os.Remove(path) // one a killed rtemu left
	if len(path) >= 100 {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: dir, Err: err}
		}
		defer unix.Close(fd)
		path = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// The name may be one through /proc, which means another folder once
	// the descriptor is closed: the folder's removal takes the socket.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o777); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
