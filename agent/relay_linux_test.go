package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRelay runs the agent's port relay on pipes and returns the host's
// side of it, and a func that ends the pipe.
func startRelay(t *testing.T) (*Relay, func()) {
	t.Helper()
	h2aR, h2aW := io.Pipe()
	a2hR, a2hW := io.Pipe()
	go func() { ServePorts(h2aR, a2hW); a2hW.Close() }()
	end := func() { h2aW.Close(); a2hR.Close() }
	t.Cleanup(end)
	br := bufio.NewReader(a2hR)
	if typ, p, err := ReadFrame(br); err != nil || typ != FrameReady || string(p) != Version {
		t.Fatalf("first frame %q %q %v", typ, p, err)
	}
	r, err := NewRelay(br, h2aW, end)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, end
}

func openPort(ctx context.Context, r *Relay, port int) (net.Conn, error) {
	req, _ := json.Marshal(PortRequest{Port: port})
	return r.Open(ctx, req)
}

// serveTCP accepts connections on loopback and hands each to fn; it
// returns the port.
func serveTCP(t *testing.T, fn func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); fn(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// Many connections at once through one relay each get their own bytes back
// whole; and a connection whose reader does not read
// holds up only itself: the others finish meanwhile, and once it reads,
// all it was sent arrives (back-pressure, not loss or a reset).
func TestRelayConcurrentStreamsAndSlowReader(t *testing.T) {
	t.Parallel()
	r, _ := startRelay(t)
	open := func(ctx context.Context, port int) (net.Conn, error) { return openPort(ctx, r, port) }
	echo := serveTCP(t, func(c net.Conn) {
		_, _ = io.Copy(c, c)
		_ = c.(*net.TCPConn).CloseWrite()
	})
	const flood = 8 * RelayWindow
	floodData := make([]byte, flood)
	_, _ = rand.Read(floodData)
	flooder := serveTCP(t, func(c net.Conn) { _, _ = c.Write(floodData) })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The slow one first: the agent fills its window and then must
	// wait, while the others go on.
	slow, err := open(ctx, flooder)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	const conns, size = 32, 1 << 20
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := open(ctx, echo)
			if err != nil {
				t.Errorf("conn %d: %v", i, err)
				return
			}
			defer c.Close()
			payload := make([]byte, size)
			_, _ = rand.Read(payload)
			go func() {
				_, _ = c.Write(payload)
				_ = c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			_ = c.SetReadDeadline(time.Now().Add(150 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(payload) {
				t.Errorf("conn %d: %d of %d bytes back, err %v", i, len(got), size, err)
			}
		}()
	}
	wg.Wait()
	_ = slow.SetReadDeadline(time.Now().Add(150 * time.Second))
	got, err := io.ReadAll(slow)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(floodData) {
		t.Errorf("the slow reader got %d of %d bytes, err %v", len(got), flood, err)
	}
}

// The relay reaches servers bound to loopback addresses and refuses a port
// nobody listens on, saying so; Close ends reading at once and reaches the
// server as an end; and when the pipe ends, a connection's read and a new
// open say so rather than read as a clean end.
func TestServePorts(t *testing.T) {
	t.Parallel()
	r, end := startRelay(t)
	ctx := context.Background()
	for _, bind := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			t.Logf("%s: %v (skipped)", bind, err)
			continue
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		if bind != "127.0.0.1:0" {
			// The relay tries 127.0.0.1 first: the same port number taken
			// there (by another test) would answer instead.
			v4, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				t.Logf("%s: port %d is in use on 127.0.0.1 (skipped)", bind, port)
				continue
			}
			v4.Close()
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_, _ = io.WriteString(c, "hello from "+bind+"\n")
				c.Close()
			}
		}()
		c, err := openPort(ctx, r, port)
		if err != nil {
			t.Fatalf("%s: %v", bind, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello from "+bind+"\n" {
			t.Errorf("%s: %q %v", bind, got, err)
		}
		c.Close()
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err := openPort(ctx, r, port)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Msg, "nothing listens on port") {
		t.Fatalf("closed port: %v", err)
	}

	serverSaw := make(chan error, 1)
	held := serveTCP(t, func(c net.Conn) {
		_, err := io.ReadAll(c)
		serverSaw <- err
	})
	c, err := openPort(ctx, r, held)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil || !err.(net.Error).Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	readErr := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); readErr <- err }()
	_ = c.Close()
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("a read under way at Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("a read under way at Close never returned")
	}
	select {
	case <-serverSaw:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the Close")
	}

	waiting, err := openPort(ctx, r, held)
	if err != nil {
		t.Fatal(err)
	}
	end()
	if _, err := waiting.Read(make([]byte, 1)); !errors.Is(err, ErrRelayClosed) {
		t.Errorf("read after the pipe ended: %v, want ErrRelayClosed", err)
	}
	if _, err := openPort(ctx, r, held); !errors.Is(err, ErrRelayClosed) {
		t.Errorf("open after the pipe ended: %v, want ErrRelayClosed", err)
	}
}
