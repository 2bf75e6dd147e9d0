//go:build linux

package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
	"github.com/rtemu-dev/rtemu/agent/client"
)

// relayEngine opens relays to agents served in this process on pipes, as
// an engine's stream would carry them; fail, if set, is what a start
// returns instead, and gate, if set, holds a start until it is closed.
type relayEngine struct {
	t      *testing.T
	starts atomic.Int32
	fail   error
	gate   chan struct{}
	mu     sync.Mutex
	ends   []func() // each relay's pipe's end
}

func (e *relayEngine) open(ctx context.Context, name string) (*agent.Relay, error) {
	e.starts.Add(1)
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if e.fail != nil {
		return nil, e.fail
	}
	h2aR, h2aW := io.Pipe()
	a2hR, a2hW := io.Pipe()
	go func() { agent.ServePorts(h2aR, a2hW); a2hW.Close() }()
	end := func() { h2aW.Close(); a2hR.Close() }
	e.mu.Lock()
	e.ends = append(e.ends, end)
	e.mu.Unlock()
	e.t.Cleanup(end)
	br := bufio.NewReader(a2hR)
	if typ, p, err := agent.ReadFrame(br); err != nil || typ != agent.FrameReady || string(p) != agent.Version {
		end()
		return nil, errors.New("no ready frame")
	}
	return agent.NewRelay(br, h2aW, end)
}

func newRelays(t *testing.T, e *relayEngine, idleFor time.Duration, lasting error) *client.Relays {
	e.t = t
	rs := client.NewRelays(context.Background(), client.RelayOptions{
		Open: e.open, IdleFor: idleFor, StartTimeout: 10 * time.Second,
		Lasting: func(err error) bool { return lasting != nil && errors.Is(err, lasting) },
	})
	t.Cleanup(rs.Close)
	return rs
}

// echoPort serves an echo on loopback and returns its port.
func echoPort(t *testing.T) int {
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
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	return port
}

func dialThrough(t *testing.T, m *agent.Relay, port int) net.Conn {
	t.Helper()
	req, _ := json.Marshal(agent.PortRequest{Port: port})
	c, err := m.Open(context.Background(), req)
	if err != nil {
		t.Fatalf("open a stream to port %d: %v", port, err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the relay: %q %v", buf, err)
	}
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Many asking at once start one relay, which carries a connection.
func TestRelaysOneStart(t *testing.T) {
	t.Parallel()
	e := &relayEngine{gate: make(chan struct{})}
	rs := newRelays(t, e, time.Hour, nil)
	var wg sync.WaitGroup
	got := make([]*agent.Relay, 8)
	for i := range got {
		wg.Go(func() {
			m, err := rs.Get(context.Background(), "s")
			if err != nil {
				t.Error(err)
			}
			got[i] = m
		})
	}
	waitFor(t, "a start", func() bool { return e.starts.Load() > 0 })
	close(e.gate)
	wg.Wait()
	if n := e.starts.Load(); n != 1 {
		t.Fatalf("%d starts; want 1", n)
	}
	for _, m := range got {
		if m != got[0] {
			t.Fatal("callers got different relays")
		}
	}
	dialThrough(t, got[0], echoPort(t)).Close()
	if m, _ := rs.Get(context.Background(), "t"); m == got[0] || e.starts.Load() != 2 {
		t.Fatal("another sandbox shares the relay")
	}
}

// A caller that gives up leaves the start going for the next.
func TestRelaysCallerGivesUp(t *testing.T) {
	t.Parallel()
	e := &relayEngine{gate: make(chan struct{})}
	rs := newRelays(t, e, time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rs.Get(ctx, "s"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled context: %v", err)
	}
	close(e.gate)
	if _, err := rs.Get(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	if n := e.starts.Load(); n != 1 {
		t.Fatalf("%d starts; want 1", n)
	}
}

// An idle relay is closed, not while a stream is open on it; the next Get
// starts another.
func TestRelaysIdle(t *testing.T) {
	t.Parallel()
	e := &relayEngine{}
	const idleFor = 30 * time.Millisecond
	rs := newRelays(t, e, idleFor, nil)
	m, err := rs.Get(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	c := dialThrough(t, m, echoPort(t))
	for start := time.Now(); time.Since(start) < 5*idleFor; time.Sleep(5 * time.Millisecond) {
		if !rs.Has("s") {
			c.Close()
			t.Fatal("a relay with an open stream was closed as idle")
		}
	}
	c.Close()
	waitFor(t, "the idle relay closed", func() bool {
		select {
		case <-m.Done():
			return !rs.Has("s")
		default:
			return false
		}
	})
	if m2, err := rs.Get(context.Background(), "s"); err != nil || m2 == m || e.starts.Load() != 2 {
		t.Fatalf("Get after the idle close: %v, new %v, %d starts", err, m2 != m, e.starts.Load())
	}
}

// A relay that broke is dropped and another started; one that ended is
// noticed by Get itself.
func TestRelaysBroken(t *testing.T) {
	t.Parallel()
	e := &relayEngine{}
	rs := newRelays(t, e, time.Hour, nil)
	m, err := rs.Get(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.ends[0]()
	e.mu.Unlock()
	req, _ := json.Marshal(agent.PortRequest{Port: echoPort(t)})
	if _, err := m.Open(context.Background(), req); !errors.Is(err, agent.ErrRelayClosed) {
		t.Fatalf("open on an ended relay: %v; want ErrRelayClosed", err)
	}
	rs.Drop("s", m)
	m2, err := rs.Get(context.Background(), "s")
	if err != nil || m2 == m {
		t.Fatalf("Get after Drop: %v, new %v", err, m2 != m)
	}
	// Ended without a Drop: Get sees it done.
	e.mu.Lock()
	e.ends[1]()
	e.mu.Unlock()
	waitFor(t, "the relay done", func() bool {
		select {
		case <-m2.Done():
			return true
		default:
			return false
		}
	})
	m3, err := rs.Get(context.Background(), "s")
	if err != nil || m3 == m2 || e.starts.Load() != 3 {
		t.Fatalf("Get after the relay ended: %v, new %v, %d starts", err, m3 != m2, e.starts.Load())
	}
	dialThrough(t, m3, echoPort(t)).Close()
}

// A lasting error is given at once until Forget; another is tried again.
func TestRelaysErrors(t *testing.T) {
	t.Parallel()
	errLasting, errOnce := errors.New("no agent"), errors.New("slow")
	cases := []struct {
		name   string
		err    error
		starts int32 // after two Gets
	}{
		{name: "lasting", err: errLasting, starts: 1},
		{name: "passing", err: errOnce, starts: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := &relayEngine{fail: tc.err}
			rs := newRelays(t, e, time.Hour, errLasting)
			for range 2 {
				if _, err := rs.Get(context.Background(), "s"); !errors.Is(err, tc.err) {
					t.Fatalf("Get: %v; want %v", err, tc.err)
				}
			}
			if n := e.starts.Load(); n != tc.starts {
				t.Fatalf("%d starts; want %d", n, tc.starts)
			}
			rs.Forget("s")
			_, _ = rs.Get(context.Background(), "s")
			if n := e.starts.Load(); n != tc.starts+1 {
				t.Fatalf("after Forget: %d starts; want %d", n, tc.starts+1)
			}
		})
	}
}

// Forget and Close end the relays; after Close, Get refuses.
func TestRelaysForgetClose(t *testing.T) {
	t.Parallel()
	e := &relayEngine{}
	rs := newRelays(t, e, time.Hour, nil)
	ms := map[string]*agent.Relay{}
	for _, name := range []string{"a", "b", "c"} {
		m, err := rs.Get(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		ms[name] = m
	}
	done := func(m *agent.Relay) bool {
		select {
		case <-m.Done():
			return true
		default:
			return false
		}
	}
	rs.Forget("a")
	waitFor(t, "a's relay closed", func() bool { return done(ms["a"]) })
	if done(ms["b"]) || !rs.Has("b") {
		t.Fatal("Forget closed another sandbox's relay")
	}
	rs.Close()
	waitFor(t, "every relay closed", func() bool { return done(ms["b"]) && done(ms["c"]) })
	if _, err := rs.Get(context.Background(), "b"); !errors.Is(err, client.ErrRelaysClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
