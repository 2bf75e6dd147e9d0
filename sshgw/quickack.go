package sshgw

import (
	"net"
	"syscall"
)

// quickAckListener hands out connections that acknowledge every read at
// once. OpenSSH's client leaves Nagle on for non-interactive sessions
// (`ssh host cmd`) and writes the handshake in small pieces: each piece
// after the first waits for the ACK of the one before, which Linux delays
// by 40 ms when the server has nothing to send back. Two such waits in the
// key exchange and the service request made `ssh host true` ~85 ms slower
// than it needs to be (measured by the bench, BENCHMARKS.md).
type quickAckListener struct{ net.Listener }

func (l quickAckListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &quickAckConn{TCPConn: tc, raw: raw}, nil
}

type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

// Read re-arms quick ACKs after every read: the kernel turns them off again
// on its own, and setting the option also sends an ACK that is pending.
func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		setQuickAck(c.raw)
	}
	return n, err
}
