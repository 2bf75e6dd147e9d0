package client_test

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
	"github.com/rtemu-dev/rtemu/agent/client"
)

// fakeConn is a stream that only knows whether it was closed; rank is its
// rank in a pool with Rank.
type fakeConn struct {
	id      string
	rank    int
	closed  atomic.Int32
	onClose func()
}

func (c *fakeConn) Reader() *bufio.Reader      { return nil }
func (c *fakeConn) Writer() *agent.FrameWriter { return nil }
func (c *fakeConn) Close() {
	if c.closed.Add(1) == 1 && c.onClose != nil {
		c.onClose()
	}
}
func (c *fakeConn) isClosed() bool { return c.closed.Load() > 0 }

func byRank(c *fakeConn) int { return c.rank }

func newPool(keep int, idleFor time.Duration, rank func(*fakeConn) int) *client.Pool[*fakeConn] {
	return client.NewPool(client.PoolOptions[*fakeConn]{Keep: keep, IdleFor: idleFor, Rank: rank})
}

// Puts past the cap, and which stream Get hands out and Put evicts, with
// and without ranks.
func TestPoolKeepAndRank(t *testing.T) {
	t.Parallel()
	type put struct {
		id   string
		rank int
	}
	cases := []struct {
		name   string
		keep   int
		rank   func(*fakeConn) int
		puts   []put
		closed []string // closed by the puts
		gets   []string // what Get then hands out, in order, until none
	}{
		{name: "newest first", keep: 4, puts: []put{{"a", 0}, {"b", 0}, {"c", 0}},
			gets: []string{"c", "b", "a"}},
		{name: "past the cap the new one is closed", keep: 2, puts: []put{{"a", 0}, {"b", 0}, {"c", 0}},
			closed: []string{"c"}, gets: []string{"b", "a"}},
		{name: "ranks ignored without Rank", keep: 2, puts: []put{{"a", 0}, {"b", 0}, {"c", 1}},
			closed: []string{"c"}, gets: []string{"b", "a"}},
		{name: "higher rank handed out first", keep: 4, rank: byRank,
			puts: []put{{"own1", 1}, {"relay1", 0}, {"own2", 1}, {"relay2", 0}},
			gets: []string{"own2", "own1", "relay2", "relay1"}},
		{name: "a higher rank evicts the oldest of the lowest", keep: 3, rank: byRank,
			puts:   []put{{"relay1", 0}, {"relay2", 0}, {"own1", 1}, {"own2", 1}},
			closed: []string{"relay1"}, gets: []string{"own2", "own1", "relay2"}},
		{name: "a lower rank does not evict", keep: 2, rank: byRank,
			puts:   []put{{"own1", 1}, {"own2", 1}, {"relay1", 0}},
			closed: []string{"relay1"}, gets: []string{"own2", "own1"}},
		{name: "a like rank does not evict", keep: 2, rank: byRank,
			puts:   []put{{"relay1", 0}, {"own1", 1}, {"relay2", 0}},
			closed: []string{"relay2"}, gets: []string{"own1", "relay1"}},
		{name: "nothing kept with Keep 0", keep: 0, puts: []put{{"a", 0}}, closed: []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tc.keep, time.Hour, tc.rank)
			defer p.Close()
			conns := map[string]*fakeConn{}
			for _, x := range tc.puts {
				c := &fakeConn{id: x.id, rank: x.rank}
				conns[x.id] = c
				p.Put("s", c)
			}
			var closed []string
			for _, x := range tc.puts {
				if conns[x.id].isClosed() {
					closed = append(closed, x.id)
				}
			}
			if !slices.Equal(closed, tc.closed) {
				t.Fatalf("closed by the puts: %v; want %v", closed, tc.closed)
			}
			var got []string
			for {
				c, ok, err := p.Get("s")
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if c.isClosed() {
					t.Fatalf("Get handed out %s, which is closed", c.id)
				}
				got = append(got, c.id)
			}
			if !slices.Equal(got, tc.gets) {
				t.Fatalf("Get handed out %v; want %v", got, tc.gets)
			}
			if _, ok, _ := p.Get("other"); ok {
				t.Fatal("another sandbox got a stream")
			}
		})
	}
}

// An idle stream is closed once its time is up; one handed out before is
// not.
func TestPoolIdleExpiry(t *testing.T) {
	t.Parallel()
	p := newPool(4, 50*time.Millisecond, nil)
	defer p.Close()
	a, b := &fakeConn{id: "a"}, &fakeConn{id: "b"}
	p.Put("s", a)
	p.Put("s", b)
	if c, ok, _ := p.Get("s"); !ok || c != b {
		t.Fatalf("Get = %v %v; want b", c, ok)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !a.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the idle stream was not closed after its idle limit")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p.Idle("s") != 0 {
		t.Fatalf("%d idle after expiry; want 0", p.Idle("s"))
	}
	if _, ok, _ := p.Get("s"); ok {
		t.Fatal("an expired stream was handed out")
	}
	if b.isClosed() {
		t.Fatal("the stream handed out was closed by its old timer")
	}
	// Kept again, it gets a new time.
	p.Put("s", b)
	for !b.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the stream kept again was not closed after its idle limit")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Paused: Get refuses and Put closes, the idle streams stay for the thaw;
// CloseIdle ends them.
func TestPoolPaused(t *testing.T) {
	t.Parallel()
	p := newPool(4, time.Hour, nil)
	defer p.Close()
	a, b := &fakeConn{id: "a"}, &fakeConn{id: "b"}
	p.Put("s", a)
	p.SetPaused("s", true)
	if !p.Paused("s") || p.Paused("t") {
		t.Fatal("Paused does not say what SetPaused set")
	}
	if _, _, err := p.Get("s"); !errors.Is(err, client.ErrPaused) {
		t.Fatalf("Get while paused: %v; want ErrPaused", err)
	}
	p.Put("s", b)
	if !b.isClosed() {
		t.Fatal("Put while paused kept the stream")
	}
	if a.isClosed() {
		t.Fatal("pausing closed the idle stream")
	}
	p.SetPaused("s", false)
	if c, ok, err := p.Get("s"); err != nil || !ok || c != a {
		t.Fatalf("Get after the thaw = %v %v %v; want a", c, ok, err)
	}
	p.Put("s", a)
	p.CloseIdle("s")
	if !a.isClosed() || p.Idle("s") != 0 {
		t.Fatal("CloseIdle left an idle stream open")
	}
}

// Forget closes the sandbox's idle and tracked (busy) streams, not
// another's; a tracked stream closed by its engine is untracked.
func TestPoolForget(t *testing.T) {
	t.Parallel()
	p := newPool(4, time.Hour, nil)
	defer p.Close()
	tracked := func(name, id string) *fakeConn {
		c := &fakeConn{id: id}
		c.onClose = func() { p.Untrack(name, c) }
		p.Track(name, c)
		return c
	}
	idle, busy, gone := &fakeConn{id: "idle"}, tracked("s", "busy"), tracked("s", "gone")
	other := tracked("t", "other")
	p.Put("s", idle)
	gone.Close()
	if p.Live("s") != 1 || p.Live("t") != 1 {
		t.Fatalf("live: s %d, t %d; want 1, 1", p.Live("s"), p.Live("t"))
	}
	p.SetPaused("s", true)
	p.Forget("s")
	if !idle.isClosed() || !busy.isClosed() {
		t.Fatalf("Forget left open: idle %v, busy %v", !idle.isClosed(), !busy.isClosed())
	}
	if other.isClosed() {
		t.Fatal("Forget closed another sandbox's stream")
	}
	if p.Paused("s") || p.Live("s") != 0 || p.Idle("s") != 0 {
		t.Fatal("Forget left something of the sandbox")
	}
	if _, ok, err := p.Get("s"); ok || err != nil {
		t.Fatalf("Get after Forget = %v %v; want none", ok, err)
	}
}

// Close closes everything, and after it Get refuses, Put and Track close.
func TestPoolClose(t *testing.T) {
	t.Parallel()
	p := newPool(4, time.Hour, nil)
	var conns []*fakeConn
	for i := range 6 {
		c := &fakeConn{id: fmt.Sprint(i)}
		conns = append(conns, c)
		if i%2 == 0 {
			p.Put(fmt.Sprint("s", i%3), c)
		} else {
			p.Track(fmt.Sprint("s", i%3), c)
		}
	}
	p.Close()
	for _, c := range conns {
		if !c.isClosed() {
			t.Fatalf("stream %s left open by Close", c.id)
		}
	}
	if _, _, err := p.Get("s0"); !errors.Is(err, client.ErrPoolClosed) {
		t.Fatalf("Get after Close: %v; want ErrPoolClosed", err)
	}
	late, tracked := &fakeConn{id: "late"}, &fakeConn{id: "tracked"}
	p.Put("s0", late)
	p.Track("s0", tracked)
	if !late.isClosed() || !tracked.isClosed() {
		t.Fatal("a stream given to a closed pool was left open")
	}
}

// Streams put, got and expiring at once: each is handed out at most once
// and none is handed out closed.
func TestPoolConcurrent(t *testing.T) {
	t.Parallel()
	p := newPool(3, time.Millisecond, byRank)
	defer p.Close()
	var wg sync.WaitGroup
	var out sync.Map
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				c := &fakeConn{id: fmt.Sprint(g, "-", i), rank: i % 2}
				p.Put("s", c)
				if c, ok, _ := p.Get("s"); ok {
					if c.isClosed() {
						t.Errorf("handed out %s closed", c.id)
					}
					if _, dup := out.LoadOrStore(c, true); dup {
						t.Errorf("handed out %s twice", c.id)
					}
				}
			}
		})
	}
	wg.Wait()
}
