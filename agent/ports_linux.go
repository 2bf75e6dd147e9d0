package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// portDialTimeout bounds one connect inside the sandbox; a port nobody
// listens on is refused at once.
const portDialTimeout = 10 * time.Second

// ServePorts relays connections to the sandbox's ports until in ends (see
// relay.go), then closes them all. Each stream the host opens says what it
// is for with FramePort and is answered as a linked connection is
// (relayLinked); a stream that asks for commands (PortRequest.Commands)
// runs commands as Serve does, so one Docker exec carries every command of
// a sandbox at once; when in ends, what runs on them is killed before the
// agent exits.
func ServePorts(in io.Reader, out io.Writer) int {
	if err := NewFrameWriter(out).Write(FrameReady, []byte(Version)); err != nil {
		return 1
	}
	sess, err := yamux.Server(pipeConn{in, out, nil}, yamuxConfig())
	if err != nil {
		return 1
	}
	base := baseEnv()
	var (
		mu       sync.Mutex
		streams  = map[*yamux.Stream]bool{}
		handlers sync.WaitGroup
	)
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			break
		}
		mu.Lock()
		streams[st] = true
		mu.Unlock()
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			serveRelayStream(st, base)
			mu.Lock()
			delete(streams, st)
			mu.Unlock()
		}()
	}
	// The pipe ended (the session ends only so; its Close then finds its
	// reads over): every stream ends with it (a command's loop sees its
	// stream end and kills the command), and the handlers get a while.
	_ = sess.Close()
	done := make(chan struct{})
	go func() { handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(DrainLimit):
	}
	return 0
}

// serveRelayStream answers one stream's FramePort: commands, or a relay.
func serveRelayStream(st *yamux.Stream, base []string) {
	defer st.Close()
	w := NewFrameWriter(st)
	typ, p, err := ReadFrame(st)
	if err != nil || typ != FramePort {
		return
	}
	var r PortRequest
	if json.Unmarshal(p, &r) == nil && r.Commands {
		if w.Write(FrameStarted, []byte("commands")) != nil {
			return
		}
		serveLoop(bufio.NewReader(st), w, base, nil)
		return
	}
	if err := json.Unmarshal(p, &r); err != nil || r.Port < 1 || r.Port > 65535 {
		_ = w.Write(FrameFailed, []byte("bad port request"))
		return
	}
	conn, err := dialInside(r.Port)
	if err != nil {
		_ = w.Write(FrameFailed, []byte(err.Error()))
		return
	}
	defer conn.Close()
	if w.Write(FrameStarted, []byte(conn.RemoteAddr().String())) != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(conn, st); err != nil {
			conn.Close() // a reset from the host: nothing more goes either way
			return
		}
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(st, conn); err != nil {
		conn.Close()
	}
	_ = st.Close() // a half close: the host's side may still send
	<-done
}

// dialInside connects to port on the sandbox's loopback addresses, then on
// its other addresses: a server bound to 127.0.0.1 or ::1 is reached as one
// bound to 0.0.0.0 is, and so is one bound to the container's address only.
func dialInside(port int) (net.Conn, error) {
	hosts := []string{"127.0.0.1", "::1"}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	var last error
	for _, h := range hosts {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h, strconv.Itoa(port)), portDialTimeout)
		if err == nil {
			return c, nil
		}
		if last == nil {
			last = err // what happened at 127.0.0.1 says most
		}
	}
	return nil, fmt.Errorf("nothing listens on port %d in the sandbox (tried %s): %v", port, strings.Join(hosts, ", "), last)
}
