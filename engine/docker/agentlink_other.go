//go:build !linux

package docker

import (
	"net"
)

// LinksSupported: outside Linux the engine runs containers in a VM, whose
// file sharing carries no unix sockets; commands and ports go by the
// engine's streams.
const LinksSupported = false

func listenUnixIn(dir, name string) (net.Listener, error) { return nil, errNoLink }
