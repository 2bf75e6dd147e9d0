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

// The port relay: the agent's second mode (EnvServe=ServePortsMode). rtemu
// opens connections to a sandbox's ports from inside the sandbox's own
// network namespace, through one Docker exec per sandbox whose stdin and
// stdout carry many connections at once, so it never needs a route to the
// container's address (Docker Desktop, a VM or remote engine, rtemu in a
// container) and a server bound to 127.0.0.1 in the sandbox is reachable.
//
// After the agent's FrameReady the pipe speaks yamux (hashicorp/yamux: its
// frames, stream ids, per-stream windows and half closes); only the host
// opens streams. A stream carries what a linked connection does
// (link_linux.go): FramePort with a PortRequest, the agent's FrameStarted
// (payload: the address reached, or "commands") or FrameFailed (why), then
// raw bytes, or the command frames of Serve.

// RelayWindow is how many bytes of one stream may be in flight unread.
const RelayWindow = 1 << 20

// PortRequest opens a connection to a port of the sandbox, or, with
// Commands, a stream that runs commands (Serve's frames) instead.
type PortRequest struct {
	Port     int  `json:"port,omitempty"`
	Commands bool `json:"commands,omitempty"`
}

// RefusedError is a connection the agent could not make.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// ErrRelayClosed: the relay's pipe ended (its agent exited, the container
// stopped, or the host closed it).
var ErrRelayClosed = errors.New("port relay closed")

// yamuxConfig is yamux's defaults with a window of 1 MiB a stream (256 KiB
// by default: the engine's exec stream has a long round trip), and no
// keep-alive or logging (the host notices a dead relay by its pipe ending;
// the agent's stderr goes nowhere).
func yamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.MaxStreamWindowSize = RelayWindow
	c.EnableKeepAlive = false
	c.LogOutput = io.Discard
	// Past this a stream closed here whose other side never closes is
	// reset (yamux has no reset of one stream to send at once).
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

// Relay is the host's side of the port relay.
type Relay struct{ s *yamux.Session }

// NewRelay starts a yamux session (its client, the side that opens
// streams) on the pipe (r, w); closeFn closes the pipe, which must end a
// Read of r under way.
func NewRelay(r io.Reader, w io.Writer, closeFn func()) (*Relay, error) {
	s, err := yamux.Client(pipeConn{r, w, closeFn}, yamuxConfig())
	if err != nil {
		return nil, err
	}
	return &Relay{s: s}, nil
}

// Done is closed once the pipe has ended.
func (y *Relay) Done() <-chan struct{} { return y.s.CloseChan() }

// Streams is the number of open streams.
func (y *Relay) Streams() int { return y.s.NumStreams() }

// Close ends every stream and closes the pipe.
func (y *Relay) Close() { _ = y.s.Close() }

// Open opens a stream, sends req (a PortRequest) and waits for the agent's
// answer: a *RefusedError when it could not connect, ErrRelayClosed when the
// pipe has ended.
func (y *Relay) Open(ctx context.Context, req []byte) (net.Conn, error) {
	st, err := y.s.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRelayClosed, err)
	}
	c := &relayConn{Stream: st}
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
			return nil, fmt.Errorf("%w: %v", ErrRelayClosed, err)
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

// relayConn is one connection through the relay. A yamux stream's Close is
// a half close (FIN), and yamux has no reset of one stream; Close here ends
// reading too. What the other side still sends waits
// in the stream's window, unread, until it closes its side or
// StreamCloseTimeout passes and yamux resets the stream.
type relayConn struct {
	*yamux.Stream
	addr   string
	closed atomic.Bool
}

// Read reads what the other side sent.
func (c *relayConn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.Stream.Read(b)
	switch {
	case err != nil && c.closed.Load():
		err = net.ErrClosed
	case err == io.EOF && c.Stream.Session().IsClosed():
		// yamux ends every stream with an EOF when its pipe ends: that is
		// no end the other side sent, and the bytes may be cut short.
		err = fmt.Errorf("%w: %v", ErrRelayClosed, yamux.ErrSessionShutdown)
	}
	return n, err
}

// CloseWrite tells the other side that nothing more will be sent.
func (c *relayConn) CloseWrite() error { return c.Stream.Close() }

// Close ends the connection both ways; a Read under way returns.
func (c *relayConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	_ = c.Stream.SetReadDeadline(time.Now())
	return c.Stream.Close()
}

// RemoteAddr is what the agent connected to inside the sandbox.
func (c *relayConn) RemoteAddr() net.Addr { return relayAddr(c.addr) }

// LocalAddr names the relay.
func (c *relayConn) LocalAddr() net.Addr { return relayAddr("rtemu-agent") }

type relayAddr string

func (a relayAddr) Network() string { return "rtemu-relay" }
func (a relayAddr) String() string  { return string(a) }
