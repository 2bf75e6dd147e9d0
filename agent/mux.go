package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The port relay: the agent's second mode (EnvServe=ServePortsMode). rtemu
// opens connections to a sandbox's ports from inside the sandbox's own
// network namespace, through one Docker exec per sandbox whose stdin and
// stdout carry many connections at once, so it never needs a route to the
// container's address (Docker Desktop, a VM or remote engine, rtemu in a
// container) and a server bound to 127.0.0.1 in the sandbox is reachable.
//
// A Mux frame is a type byte, a big-endian uint32 stream id, a big-endian
// uint32 payload length, and the payload. Only the host opens streams. Each
// side may have at most MuxWindow bytes of a stream in flight that the other
// has not read; a reader hands credit back as its application reads, so one
// slow connection never holds up the others on the shared pipe.
const (
	muxOpen   = 'o' // host → agent: a PortRequest (JSON)
	muxAccept = 'a' // agent → host: connected; payload: the address reached
	muxRefuse = 'f' // agent → host: not connected; payload: why
	muxData   = 'd' // bytes of the stream
	muxEOF    = 'e' // the sender will send no more (a half close)
	muxReset  = 'r' // the sender is done with the stream altogether
	muxCredit = 'w' // payload: uint32 more bytes the sender may send
)

// MuxWindow is how many bytes of one stream may be in flight unread.
const MuxWindow = 1 << 20

// muxChunk bounds a data frame.
const muxChunk = 64 << 10

// PortRequest opens a connection to a port of the sandbox, or, with
// Commands, a stream that runs commands (Serve's frames) instead.
type PortRequest struct {
	Port     int  `json:"port,omitempty"`
	Commands bool `json:"commands,omitempty"`
}

// RefusedError is a connection the agent could not make.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

var (
	// ErrMuxClosed: the relay's pipe ended (its agent exited, the
	// container stopped, or the host closed it).
	ErrMuxClosed = errors.New("port relay closed")
	errReset     = errors.New("connection reset by the other side of the relay")
)

// Mux carries streams over one pipe (r, w).
type Mux struct {
	r      *bufio.Reader
	wmu    sync.Mutex
	w      io.Writer
	onOpen func(s *Stream, req []byte) // the agent's side; nil on the host's

	mu      sync.Mutex
	streams map[uint32]*Stream
	next    uint32
	err     error // set once the pipe has ended
	done    chan struct{}
	// handlers counts the onOpen calls under way; each is counted before
	// its goroutine starts, so before done can close.
	handlers sync.WaitGroup
}

// NewMux starts reading frames from r. onOpen is called, on a goroutine of
// its own, for each stream the other side opens; it must Accept or Refuse.
func NewMux(r io.Reader, w io.Writer, onOpen func(s *Stream, req []byte)) *Mux {
	m := &Mux{r: bufio.NewReaderSize(r, muxChunk+9), w: w, onOpen: onOpen, streams: map[uint32]*Stream{}, done: make(chan struct{})}
	go m.readLoop()
	return m
}

// Done is closed once the pipe has ended.
func (m *Mux) Done() <-chan struct{} { return m.done }

// WaitHandlers waits, once the mux is done, until every onOpen call has
// returned, or for at most limit.
func (m *Mux) WaitHandlers(limit time.Duration) {
	<-m.done
	returned := make(chan struct{})
	go func() { m.handlers.Wait(); close(returned) }()
	select {
	case <-returned:
	case <-time.After(limit):
	}
}

// Streams is the number of open streams.
func (m *Mux) Streams() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

// Close ends every stream and stops using the pipe (the caller closes it).
func (m *Mux) Close() { m.fail(ErrMuxClosed) }

func (m *Mux) fail(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	m.err = err
	streams := m.streams
	m.streams = map[uint32]*Stream{}
	close(m.done)
	m.mu.Unlock()
	for _, s := range streams {
		s.update(func() { s.broken = true })
	}
}

func (m *Mux) writeFrame(typ byte, id uint32, payload []byte) error {
	buf := make([]byte, 9+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], id)
	binary.BigEndian.PutUint32(buf[5:9], uint32(len(payload)))
	copy(buf[9:], payload)
	m.wmu.Lock()
	defer m.wmu.Unlock()
	select {
	case <-m.done:
		return ErrMuxClosed
	default:
	}
	if _, err := m.w.Write(buf); err != nil {
		m.fail(fmt.Errorf("%w: %v", ErrMuxClosed, err))
		return ErrMuxClosed
	}
	return nil
}

func (m *Mux) readLoop() {
	var hdr [9]byte
	for {
		if _, err := io.ReadFull(m.r, hdr[:]); err != nil {
			m.fail(fmt.Errorf("%w: %v", ErrMuxClosed, err))
			return
		}
		typ, id, n := hdr[0], binary.BigEndian.Uint32(hdr[1:5]), binary.BigEndian.Uint32(hdr[5:9])
		if n > MuxWindow {
			m.fail(fmt.Errorf("%w: a frame of %d bytes", ErrFrame, n))
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(m.r, p); err != nil {
			m.fail(fmt.Errorf("%w: %v", ErrMuxClosed, err))
			return
		}
		m.mu.Lock()
		s := m.streams[id]
		if typ == muxOpen && s == nil && m.onOpen != nil && m.err == nil {
			s = m.newStreamLocked(id)
			m.mu.Unlock()
			m.handlers.Add(1)
			go func() {
				defer m.handlers.Done()
				m.onOpen(s, p)
			}()
			continue
		}
		m.mu.Unlock()
		if s == nil {
			// A stream already closed here: what was on its way is dropped.
			continue
		}
		s.receive(typ, p)
	}
}

func (m *Mux) newStreamLocked(id uint32) *Stream {
	s := &Stream{m: m, id: id, sendWin: MuxWindow, wake: make(chan struct{}), opened: make(chan struct{})}
	m.streams[id] = s
	return s
}

func (m *Mux) forget(id uint32) {
	m.mu.Lock()
	delete(m.streams, id)
	m.mu.Unlock()
}

// Open asks the other side for a stream (the host's side: a connection to a
// port) and waits for its answer: a *RefusedError when it could not connect.
func (m *Mux) Open(ctx context.Context, req []byte) (*Stream, error) {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return nil, err
	}
	m.next++
	s := m.newStreamLocked(m.next)
	m.mu.Unlock()
	if err := m.writeFrame(muxOpen, s.id, req); err != nil {
		m.forget(s.id)
		return nil, err
	}
	select {
	case <-s.opened:
		if s.openErr != nil {
			return nil, s.openErr
		}
		return s, nil
	case <-m.done:
		return nil, m.err
	case <-ctx.Done():
		_ = s.Close()
		return nil, ctx.Err()
	}
}

// Stream is one connection through the relay. It is a net.Conn, with
// CloseWrite for a half close; Close ends it both ways.
type Stream struct {
	m  *Mux
	id uint32

	opened  chan struct{} // host side: closed at accept or refuse
	openErr error
	addr    string // the address the agent reached

	mu        sync.Mutex
	wake      chan struct{} // closed and replaced at every change
	buf       [][]byte      // received, unread
	buffered  int
	unacked   int // read but not yet credited back
	sendWin   int
	remoteEOF bool
	localEOF  bool
	reset     bool // the other side reset it
	closed    bool // Close was called here
	broken    bool // the pipe ended
	rdl, wdl  time.Time
}

// update changes the stream's state under its lock and wakes its waiters.
func (s *Stream) update(fn func()) {
	s.mu.Lock()
	fn()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

func (s *Stream) receive(typ byte, p []byte) {
	switch typ {
	case muxAccept, muxRefuse:
		select {
		case <-s.opened:
			return
		default:
		}
		if typ == muxRefuse {
			s.openErr = &RefusedError{Msg: string(p)}
			s.m.forget(s.id)
		} else {
			s.addr = string(p)
		}
		close(s.opened)
	case muxData:
		overflow := false
		s.update(func() {
			if s.closed {
				return
			}
			if s.buffered+len(p) > MuxWindow {
				overflow = true
				return
			}
			s.buf = append(s.buf, p)
			s.buffered += len(p)
		})
		if overflow {
			// The other side broke the window: drop the stream.
			s.update(func() { s.reset = true })
			_ = s.m.writeFrame(muxReset, s.id, nil)
			s.m.forget(s.id)
		}
	case muxEOF:
		s.update(func() { s.remoteEOF = true })
		s.forgetIfDone()
	case muxReset:
		s.update(func() { s.reset = true })
		s.m.forget(s.id)
	case muxCredit:
		if len(p) == 4 {
			s.update(func() { s.sendWin += int(binary.BigEndian.Uint32(p)) })
		}
	}
}

// forgetIfDone drops a stream closed both ways.
func (s *Stream) forgetIfDone() {
	s.mu.Lock()
	done := s.remoteEOF && s.localEOF && s.buffered == 0
	s.mu.Unlock()
	if done {
		s.m.forget(s.id)
	}
}

// wait blocks until the stream changes or the deadline passes; called with
// s.mu held, it returns with it held.
func (s *Stream) wait(deadline time.Time) error {
	w := s.wake
	s.mu.Unlock()
	defer s.mu.Lock()
	if deadline.IsZero() {
		<-w
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w:
		return nil
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
}

// Read reads what the other side sent; data sent before an EOF or a reset
// is read first.
func (s *Stream) Read(b []byte) (int, error) {
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		if len(s.buf) > 0 {
			n := copy(b, s.buf[0])
			if n == len(s.buf[0]) {
				s.buf = s.buf[1:]
			} else {
				s.buf[0] = s.buf[0][n:]
			}
			s.buffered -= n
			s.unacked += n
			credit := 0
			if s.unacked >= MuxWindow/4 || (s.buffered == 0 && s.unacked >= muxChunk) {
				credit, s.unacked = s.unacked, 0
			}
			s.mu.Unlock()
			if credit > 0 {
				_ = s.m.writeFrame(muxCredit, s.id, binary.BigEndian.AppendUint32(nil, uint32(credit)))
			}
			return n, nil
		}
		switch {
		case s.remoteEOF: // all that was sent has come: a reset after it is only the end
			s.mu.Unlock()
			s.forgetIfDone()
			return 0, io.EOF
		case s.reset:
			s.mu.Unlock()
			return 0, errReset
		case s.broken:
			s.mu.Unlock()
			return 0, ErrMuxClosed
		}
		if !s.rdl.IsZero() && !time.Now().Before(s.rdl) {
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if err := s.wait(s.rdl); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
}

// Write sends b, waiting for credit as the other side reads.
func (s *Stream) Write(b []byte) (int, error) {
	written := 0
	s.mu.Lock()
	for written < len(b) {
		switch {
		case s.closed:
			s.mu.Unlock()
			return written, net.ErrClosed
		case s.localEOF:
			s.mu.Unlock()
			return written, errors.New("write after CloseWrite")
		case s.reset:
			s.mu.Unlock()
			return written, errReset
		case s.broken:
			s.mu.Unlock()
			return written, ErrMuxClosed
		}
		if s.sendWin <= 0 {
			if err := s.wait(s.wdl); err != nil {
				s.mu.Unlock()
				return written, err
			}
			continue
		}
		n := min(len(b)-written, s.sendWin, muxChunk)
		s.sendWin -= n
		s.mu.Unlock()
		if err := s.m.writeFrame(muxData, s.id, b[written:written+n]); err != nil {
			return written, err
		}
		written += n
		s.mu.Lock()
	}
	s.mu.Unlock()
	return written, nil
}

// CloseWrite tells the other side that nothing more will be sent.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	if s.localEOF || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.localEOF = true
	s.mu.Unlock()
	err := s.m.writeFrame(muxEOF, s.id, nil)
	s.forgetIfDone()
	return err
}

// Close ends the stream both ways; what the other side still sends is
// dropped.
func (s *Stream) Close() error {
	var already, reset bool
	s.update(func() {
		// Closed both ways already, or reset by the other side: nothing
		// to tell it.
		already, reset = s.closed, s.reset || (s.localEOF && s.remoteEOF)
		s.closed = true
		s.buf, s.buffered = nil, 0
	})
	if already {
		return nil
	}
	s.m.forget(s.id)
	if !reset {
		_ = s.m.writeFrame(muxReset, s.id, nil)
	}
	return nil
}

// Accept answers an open (the agent's side): connected to addr.
func (s *Stream) Accept(addr string) error { return s.m.writeFrame(muxAccept, s.id, []byte(addr)) }

// Refuse answers an open (the agent's side): not connected, and why.
func (s *Stream) Refuse(why string) error {
	s.m.forget(s.id)
	return s.m.writeFrame(muxRefuse, s.id, []byte(why))
}

// RemoteAddr is what the agent connected to inside the sandbox.
func (s *Stream) RemoteAddr() net.Addr { return relayAddr(s.addr) }

// LocalAddr names the relay.
func (s *Stream) LocalAddr() net.Addr { return relayAddr("rtemu-agent") }

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.update(func() { s.rdl, s.wdl = t, t })
	return nil
}

// SetReadDeadline bounds Read.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.update(func() { s.rdl = t })
	return nil
}

// SetWriteDeadline bounds Write.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.update(func() { s.wdl = t })
	return nil
}

type relayAddr string

func (a relayAddr) Network() string { return "rtemu-relay" }
func (a relayAddr) String() string  { return string(a) }
