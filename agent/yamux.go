package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// The port relay over hashicorp/yamux instead of Mux, for measuring the two
// against each other (BENCHMARKS.md, "Multiplexer: own vs yamux"). The agent
// speaks it when started with EnvMux=MuxYamux; the host's side is
// YamuxRelay. A stream carries what a linked connection does (link_linux.go):
// FramePort with a PortRequest, the agent's FrameStarted (payload: the
// address reached, or "commands") or FrameFailed (why), then raw bytes, or
// the command frames of Serve.
const (
	// EnvMux names the port relay's multiplexer: unset, Mux; MuxYamux,
	// yamux.
	EnvMux   = "RTEMU_AGENT_MUX"
	MuxYamux = "yamux"
)

// yamuxConfig is yamux's defaults with Mux's window (1 MiB a stream, so the
// two move the same bytes unread), and no keep-alive or logging (Mux has
// neither; the host notices a dead relay by its pipe ending).
func yamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.MaxStreamWindowSize = MuxWindow
	c.EnableKeepAlive = false
	c.LogOutput = io.Discard
	// Past this a stream closed one way whose other side never closes is
	// reset: what Mux's Close does at once.
	c.StreamCloseTimeout = 30 * time.Second
	return c
}

// pipeConn is a pipe (r, w) as yamux wants it. Closing a session closes
// its pipe and waits until its reads have ended: close must end them.
type pipeConn struct {
	io.Reader
	io.Writer
	close func()
}

func (p pipeConn) Close() error {
	if p.close != nil {
		p.close()
	}
	return nil
}

// YamuxRelay is the host's side of a relay speaking yamux.
type YamuxRelay struct{ s *yamux.Session }

// NewYamuxRelay starts a yamux session (its client, the side that opens
// streams) on the pipe (r, w); closeFn closes the pipe, which must end a
// Read of r under way.
func NewYamuxRelay(r io.Reader, w io.Writer, closeFn func()) (*YamuxRelay, error) {
	s, err := yamux.Client(pipeConn{r, w, closeFn}, yamuxConfig())
	if err != nil {
		return nil, err
	}
	return &YamuxRelay{s: s}, nil
}

// Done is closed once the pipe has ended.
func (y *YamuxRelay) Done() <-chan struct{} { return y.s.CloseChan() }

// Streams is the number of open streams.
func (y *YamuxRelay) Streams() int { return y.s.NumStreams() }

// Close ends every stream and closes the pipe.
func (y *YamuxRelay) Close() { _ = y.s.Close() }

// Open opens a stream, sends req (a PortRequest) and waits for the agent's
// answer: a *RefusedError when it could not connect, ErrMuxClosed when the
// pipe has ended.
func (y *YamuxRelay) Open(ctx context.Context, req []byte) (net.Conn, error) {
	st, err := y.s.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMuxClosed, err)
	}
	c := &yamuxConn{Stream: st}
	stop := context.AfterFunc(ctx, func() { _ = st.SetReadDeadline(time.Now()) })
	typ, p, err := func() (byte, []byte, error) {
		if err := NewFrameWriter(st).Write(FramePort, req); err != nil {
			return 0, nil, err
		}
		return ReadFrame(st)
	}()
	stopped := stop()
	switch {
	case !stopped || ctx.Err() != nil:
		c.Close()
		return nil, ctx.Err()
	case err != nil:
		c.Close()
		if y.s.IsClosed() || errors.Is(err, yamux.ErrSessionShutdown) {
			return nil, fmt.Errorf("%w: %v", ErrMuxClosed, err)
		}
		return nil, err
	case typ == FrameFailed:
		c.Close()
		return nil, &RefusedError{Msg: string(p)}
	case typ != FrameStarted:
		c.Close()
		return nil, fmt.Errorf("%w: the relay answered frame %q", ErrFrame, typ)
	}
	c.addr = string(p)
	return c, nil
}

// yamuxConn is one connection through a yamux relay. A yamux stream's Close
// is a half close (FIN), and yamux has no reset of one stream; Close here
// ends reading too, as Mux's does. What the other side still sends waits
// in the stream's window, unread, until it closes its side or
// StreamCloseTimeout passes and yamux resets the stream.
type yamuxConn struct {
	*yamux.Stream
	addr   string
	closed atomic.Bool
}

// Read reads what the other side sent.
func (c *yamuxConn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.Stream.Read(b)
	if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// CloseWrite tells the other side that nothing more will be sent.
func (c *yamuxConn) CloseWrite() error { return c.Stream.Close() }

// Close ends the connection both ways; a Read under way returns.
func (c *yamuxConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	_ = c.Stream.SetReadDeadline(time.Now())
	return c.Stream.Close()
}

// RemoteAddr is what the agent connected to inside the sandbox.
func (c *yamuxConn) RemoteAddr() net.Addr { return relayAddr(c.addr) }

// LocalAddr names the relay.
func (c *yamuxConn) LocalAddr() net.Addr { return relayAddr("rtemu-agent") }
