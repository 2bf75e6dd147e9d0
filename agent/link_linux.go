package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The link: the agent's third mode (EnvServe=ServeLinkMode). Where the
// engine runs containers on rtemu's own kernel and sees its data dir (a
// local Docker Engine on Linux), rtemu listens on a unix socket in a folder
// of its own for each sandbox, mounted read-only into the sandbox. One
// agent, the hub, started by one Docker exec, connects to that socket as
// rtemu asks; each connection it opens serves commands as Serve does, or
// relays one connection to a port (FramePort). A command then costs a
// round trip on a unix socket instead of one through the engine, and a
// relayed port carries bytes without frames or the engine's stream copies.
//
// A process of the sandbox could connect to the socket too: rtemu takes a
// connection only after it says the token the hub was given (on its stdin,
// or in the link folder until the hub that starts with the container has
// connected), and what it could do with one is no more than the sandbox can
// already do to itself.

// linkDialTimeout bounds one connect to rtemu's socket.
const linkDialTimeout = 5 * time.Second

// ServeLink is the hub: it reads the Link request, opens one connection to
// check that the socket is reachable (FrameStarted on its stdout; else
// FrameFailed, and rtemu runs commands the other way), then one more for
// every FrameDial. When in ends (rtemu stopped, or let the hub go) it closes
// every connection, which ends what runs on them, and exits.
func ServeLink(in io.Reader, out io.Writer) int {
	w := NewFrameWriter(out)
	if err := w.Write(FrameReady, []byte(Version)); err != nil {
		return 1
	}
	r := bufio.NewReader(in)
	typ, p, err := ReadFrame(r)
	var l Link
	if err != nil || typ != FrameLink || json.Unmarshal(p, &l) != nil || l.Socket == "" {
		_ = w.Write(FrameFailed, []byte("bad link request"))
		return 1
	}
	h := newHub(l)
	if err := h.dial(); err != nil {
		_ = w.Write(FrameFailed, []byte(err.Error()))
		return 0
	}
	if err := w.Write(FrameStarted, nil); err != nil {
		h.end()
		return 1
	}
	return h.serve(r, w)
}

// ServeLinkFromStart is the hub that the container's own command starts in
// the background, so that not even the first command needs a Docker exec.
// It reads its token from the link folder dir (rtemu removes the file once
// the hub is connected), connects to rtemu's socket, says the token with
// FrameHub, and then takes rtemu's FrameDials on that connection as
// ServeLink does on its stdin. It exits when that connection ends (rtemu
// stopped, or let the hub go after a while unused; the next command starts
// a hub by Docker exec), or at once when there is no link to connect to.
func ServeLinkFromStart(dir string) int {
	// A shell starts a background job with SIGINT and SIGQUIT ignored
	// (POSIX), and what is ignored stays ignored in the commands the hub
	// starts. A signal with a handler is reset at exec: with these the
	// commands get the defaults, as by Docker exec. (Go's runtime has its
	// own handler for SIGQUIT whatever it inherits.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGHUP)
	token, err := os.ReadFile(filepath.Join(dir, LinkTokenFile))
	if err != nil {
		return 1
	}
	l := Link{Socket: filepath.Join(dir, LinkSocket), Token: strings.TrimSpace(string(token))}
	c, err := net.DialTimeout("unix", l.Socket, linkDialTimeout)
	if err != nil {
		return 1
	}
	defer c.Close()
	w := NewFrameWriter(c)
	if err := w.Write(FrameHub, []byte(l.Token)); err != nil {
		return 1
	}
	h := newHub(l)
	if env := containerEnv(); env != nil {
		h.base = env
	}
	return h.serve(bufio.NewReader(c), w)
}

func newHub(l Link) *hub { return &hub{link: l, base: baseEnv(), conns: map[net.Conn]bool{}} }

// containerEnv is the environment the container's first process was given,
// which is what a Docker exec gives a command too; the hub's own has what
// the shell that started it added (SHLVL, PWD). nil if it cannot be read.
func containerEnv() []string {
	b, err := os.ReadFile("/proc/1/environ")
	if err != nil || len(b) == 0 {
		return nil
	}
	var env []string
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		if kv != "" && !strings.HasPrefix(kv, EnvServe+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// serve opens a connection for every FrameDial from r until r ends, saying
// FrameFailed on w for one it cannot open.
func (h *hub) serve(r *bufio.Reader, w *FrameWriter) int {
	for {
		typ, _, err := ReadFrame(r)
		if err != nil {
			h.end()
			return 0
		}
		if typ != FrameDial {
			continue
		}
		if err := h.dial(); err != nil {
			_ = w.Write(FrameFailed, []byte(err.Error()))
		}
	}
}

type hub struct {
	link Link
	base []string

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// dial opens one connection to rtemu and serves it.
func (h *hub) dial() error {
	c, err := net.DialTimeout("unix", h.link.Socket, linkDialTimeout)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	w := NewFrameWriter(c)
	if err := w.Write(FrameHello, []byte(h.link.Token)); err != nil {
		c.Close()
		return fmt.Errorf("link: %w", err)
	}
	h.mu.Lock()
	h.conns[c] = true
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		serveLoop(bufio.NewReader(c), w, h.base, c)
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		c.Close()
	}()
	return nil
}

// end closes every connection, so each command is killed (serveLoop kills
// its command when its connection ends), and waits a while for that.
func (h *hub) end() {
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(DrainLimit):
	}
}

// relayLinked connects to the requested port from inside the sandbox,
// answers FrameStarted (or FrameFailed, and the connection ends), and then
// copies raw bytes both ways until both directions are done. What rtemu sent
// after its request is already in r.
func relayLinked(c net.Conn, r *bufio.Reader, w *FrameWriter, req []byte) {
	var pr PortRequest
	if err := json.Unmarshal(req, &pr); err != nil || pr.Port < 1 || pr.Port > 65535 {
		_ = w.Write(FrameFailed, []byte("bad port request"))
		return
	}
	conn, err := dialInside(pr.Port)
	if err != nil {
		_ = w.Write(FrameFailed, []byte(err.Error()))
		return
	}
	defer conn.Close()
	if w.Write(FrameStarted, []byte(conn.RemoteAddr().String())) != nil {
		return
	}
	var once sync.Once
	end := func() { once.Do(func() { conn.Close(); c.Close() }) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(conn, r); err != nil {
			end() // a reset from rtemu: nothing more goes either way
			return
		}
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(c, conn); err != nil {
		end()
	} else if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	<-done
	end()
}
