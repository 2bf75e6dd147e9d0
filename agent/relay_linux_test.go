package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// relayOpen opens a connection to a port through a relay.
type relayOpen func(ctx context.Context, port int) (net.Conn, error)

// startRelay runs the agent's port relay with the multiplexer mux ("own"
// or "yamux") on pipes, and returns the host's side of it.
func startRelay(t *testing.T, mux string) relayOpen {
	t.Helper()
	h2aR, h2aW := io.Pipe()
	a2hR, a2hW := io.Pipe()
	serve := ServePorts
	if mux == MuxYamux {
		serve = ServePortsYamux
	}
	go func() { serve(h2aR, a2hW); a2hW.Close() }()
	t.Cleanup(func() { h2aW.Close() })
	br := bufio.NewReader(a2hR)
	if typ, p, err := ReadFrame(br); err != nil || typ != FrameReady || string(p) != Version {
		t.Fatalf("first frame %q %q %v", typ, p, err)
	}
	req := func(port int) []byte { b, _ := json.Marshal(PortRequest{Port: port}); return b }
	if mux == MuxYamux {
		y, err := NewYamuxRelay(br, h2aW, func() { h2aW.Close(); a2hR.Close() })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(y.Close)
		return func(ctx context.Context, port int) (net.Conn, error) { return y.Open(ctx, req(port)) }
	}
	m := NewMux(br, h2aW, nil)
	t.Cleanup(m.Close)
	return func(ctx context.Context, port int) (net.Conn, error) {
		s, err := m.Open(ctx, req(port))
		if err != nil {
			return nil, err
		}
		return s, nil
	}
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
// whole, both multiplexers; and a connection whose reader does not read
// holds up only itself: the others finish meanwhile, and once it reads,
// all it was sent arrives (back-pressure, not loss or a reset).
func TestRelayConcurrentStreamsAndSlowReader(t *testing.T) {
	t.Parallel()
	for _, mux := range []string{"own", MuxYamux} {
		t.Run(mux, func(t *testing.T) {
			t.Parallel()
			open := startRelay(t, mux)
			echo := serveTCP(t, func(c net.Conn) {
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			})
			const flood = 8 * MuxWindow
			floodData := make([]byte, flood)
			_, _ = rand.Read(floodData)
			flooder := serveTCP(t, func(c net.Conn) { _, _ = c.Write(floodData) })

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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
					_ = c.SetReadDeadline(time.Now().Add(45 * time.Second))
					got, err := io.ReadAll(c)
					if err != nil || sha256.Sum256(got) != sha256.Sum256(payload) {
						t.Errorf("conn %d: %d of %d bytes back, err %v", i, len(got), size, err)
					}
				}()
			}
			wg.Wait()
			_ = slow.SetReadDeadline(time.Now().Add(45 * time.Second))
			got, err := io.ReadAll(slow)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(floodData) {
				t.Errorf("the slow reader got %d of %d bytes, err %v", len(got), flood, err)
			}
		})
	}
}

// A refused port reads as a *RefusedError with either multiplexer.
func TestRelayRefused(t *testing.T) {
	t.Parallel()
	for _, mux := range []string{"own", MuxYamux} {
		t.Run(mux, func(t *testing.T) {
			t.Parallel()
			open := startRelay(t, mux)
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			_, err := open(context.Background(), port)
			if _, ok := err.(*RefusedError); !ok {
				t.Fatalf("closed port: %v, want a *RefusedError", err)
			}
		})
	}
}
