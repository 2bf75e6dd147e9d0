package client

import (
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrPaused: the sandbox is paused (Pool.SetPaused); its agents would not
// answer, so none is handed out.
var ErrPaused = errors.New("the sandbox is paused")

// ErrPoolClosed: the pool was closed (the engine is closing).
var ErrPoolClosed = errors.New("the agents' pool is closed")

// PoolConn is what a Pool keeps: an engine's stream, told apart by its
// identity (a pointer).
type PoolConn interface {
	Conn
	comparable
}

// PoolOptions say how a Pool keeps streams.
type PoolOptions[C any] struct {
	// Keep bounds the idle streams kept per sandbox.
	Keep int
	// IdleFor is how long an idle stream is kept: a timer closes it then
	// (an agent holds a few MB of its sandbox's memory).
	IdleFor time.Duration
	// Rank, if set, ranks streams: Get hands out an idle stream of the
	// highest rank first (the newest of them), and when the sandbox has
	// Keep idle ones already, Put keeps a stream only in place of an idle
	// one of a lower rank (the oldest of the lowest). Without it, every
	// stream ranks alike: the newest is handed out, and a Put past Keep
	// closes the stream it is given.
	Rank func(C) int
}

// Pool keeps the idle streams to sandboxes' agents between commands, per
// sandbox name, whatever the engine that opened them; it also knows the
// streams an engine asks it to track while they are busy, so that Forget
// ends those too. Every stream closed by the pool is closed outside its
// lock: a stream's Close may call back into the pool (Untrack).
type Pool[C PoolConn] struct {
	o PoolOptions[C]

	mu     sync.Mutex
	byName map[string]*kept[C]
	closed bool
}

// kept is what the pool holds of one sandbox.
type kept[C PoolConn] struct {
	idle   []*idleConn[C] // oldest first
	paused bool
	live   map[C]struct{} // tracked (Track), idle or busy
}

type idleConn[C any] struct {
	c C
	t *time.Timer // closes it after IdleFor
}

// NewPool makes an empty pool.
func NewPool[C PoolConn](o PoolOptions[C]) *Pool[C] {
	return &Pool[C]{o: o, byName: map[string]*kept[C]{}}
}

func (p *Pool[C]) rank(c C) int {
	if p.o.Rank == nil {
		return 0
	}
	return p.o.Rank(c)
}

// ofLocked is the sandbox's entry, made if need be.
func (p *Pool[C]) ofLocked(name string) *kept[C] {
	k := p.byName[name]
	if k == nil {
		k = &kept[C]{}
		p.byName[name] = k
	}
	return k
}

// tidyLocked drops an entry that holds nothing.
func (p *Pool[C]) tidyLocked(name string, k *kept[C]) {
	if len(k.idle) == 0 && len(k.live) == 0 && !k.paused && p.byName[name] == k {
		delete(p.byName, name)
	}
}

// Get hands out an idle stream of the sandbox (ok), or says there is none
// (ok false, nil error: the engine opens a fresh one); ErrPaused while the
// sandbox is paused, ErrPoolClosed once the pool is closed.
func (p *Pool[C]) Get(name string) (c C, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return c, false, ErrPoolClosed
	}
	k := p.byName[name]
	if k == nil {
		return c, false, nil
	}
	if k.paused {
		return c, false, ErrPaused
	}
	for len(k.idle) > 0 {
		i := len(k.idle) - 1
		for j, best := i-1, p.rank(k.idle[i].c); j >= 0; j-- {
			if r := p.rank(k.idle[j].c); r > best {
				i, best = j, r
			}
		}
		e := k.idle[i]
		k.idle = slices.Delete(k.idle, i, i+1)
		if e.t.Stop() {
			return e.c, true, nil
		}
		// Its timer fired: it is being closed.
	}
	return c, false, nil
}

// Put keeps c for the sandbox's next command, or closes it: when the
// sandbox is paused, the pool closed, or the sandbox has Keep idle streams
// already none of which ranks below c (one that does is closed instead).
func (p *Pool[C]) Put(name string, c C) {
	var closing []C
	defer func() {
		for _, x := range closing {
			x.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		closing = append(closing, c)
		return
	}
	k := p.ofLocked(name)
	if k.paused || p.o.Keep <= 0 {
		closing = append(closing, c)
		p.tidyLocked(name, k)
		return
	}
	if len(k.idle) >= p.o.Keep {
		// Full: the oldest of the lowest rank goes, if it ranks below c.
		low := 0
		for j := 1; j < len(k.idle); j++ {
			if p.rank(k.idle[j].c) < p.rank(k.idle[low].c) {
				low = j
			}
		}
		if p.rank(k.idle[low].c) >= p.rank(c) {
			closing = append(closing, c)
			return
		}
		evicted := k.idle[low]
		k.idle = slices.Delete(k.idle, low, low+1)
		evicted.t.Stop()
		closing = append(closing, evicted.c)
	}
	e := &idleConn[C]{c: c}
	e.t = time.AfterFunc(p.o.IdleFor, func() { p.expire(name, e) })
	k.idle = append(k.idle, e)
}

// expire closes an idle stream whose time is up, unless it was handed out
// meanwhile.
func (p *Pool[C]) expire(name string, e *idleConn[C]) {
	p.mu.Lock()
	k := p.byName[name]
	found := false
	if k != nil {
		if i := slices.Index(k.idle, e); i >= 0 {
			k.idle = slices.Delete(k.idle, i, i+1)
			found = true
			p.tidyLocked(name, k)
		}
	}
	p.mu.Unlock()
	if found {
		e.c.Close()
	}
}

// Idle says how many idle streams the sandbox has.
func (p *Pool[C]) Idle(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.byName[name]; k != nil {
		return len(k.idle)
	}
	return 0
}

// Track makes Forget and Close end c too while it is busy; the engine
// calls Untrack when it closes c. (Once the pool is closed, c is closed at
// once.)
func (p *Pool[C]) Track(name string, c C) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	k := p.ofLocked(name)
	if k.live == nil {
		k.live = map[C]struct{}{}
	}
	k.live[c] = struct{}{}
	p.mu.Unlock()
}

// Untrack forgets a tracked stream (it was closed).
func (p *Pool[C]) Untrack(name string, c C) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.byName[name]; k != nil {
		delete(k.live, c)
		p.tidyLocked(name, k)
	}
}

// Live says how many tracked streams of the sandbox are open.
func (p *Pool[C]) Live(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.byName[name]; k != nil {
		return len(k.live)
	}
	return 0
}

// SetPaused marks the sandbox paused (Get refuses, Put closes) or not. Its
// idle streams stay (they serve again once it is thawed); CloseIdle ends
// them where a paused agent's stream would not survive.
func (p *Pool[C]) SetPaused(name string, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.ofLocked(name)
	k.paused = paused
	p.tidyLocked(name, k)
}

// Paused says whether the sandbox is marked paused.
func (p *Pool[C]) Paused(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.byName[name]
	return k != nil && k.paused
}

// CloseIdle closes the sandbox's idle streams.
func (p *Pool[C]) CloseIdle(name string) {
	p.mu.Lock()
	var closing []C
	if k := p.byName[name]; k != nil {
		closing = k.takeIdle()
		p.tidyLocked(name, k)
	}
	p.mu.Unlock()
	for _, c := range closing {
		c.Close()
	}
}

// Forget closes the sandbox's idle and tracked streams and forgets it (it
// was removed): a busy agent sees its stdin end and kills its command.
func (p *Pool[C]) Forget(name string) {
	p.mu.Lock()
	k := p.byName[name]
	delete(p.byName, name)
	p.mu.Unlock()
	if k != nil {
		k.closeAll()
	}
}

// Close closes every idle and tracked stream; from then on Get refuses and
// Put closes.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	p.closed = true
	all := p.byName
	p.byName = map[string]*kept[C]{}
	p.mu.Unlock()
	for _, k := range all {
		k.closeAll()
	}
}

// takeIdle empties the idle list, its timers stopped. Under the pool's
// lock.
func (k *kept[C]) takeIdle() []C {
	out := make([]C, 0, len(k.idle))
	for _, e := range k.idle {
		e.t.Stop()
		out = append(out, e.c)
	}
	k.idle = nil
	return out
}

// closeAll closes an entry no longer in the pool: nothing else reaches it,
// but a tracked stream's Untrack, which finds it gone.
func (k *kept[C]) closeAll() {
	for _, e := range k.idle {
		e.t.Stop()
		e.c.Close()
	}
	for c := range k.live {
		c.Close()
	}
}
