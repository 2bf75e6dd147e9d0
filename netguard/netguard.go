// Package netguard keeps slow or many clients from starving rtemu: a
// bound on the connections served at once, kept under the process's file
// limit (which it raises), and deadlines on request bodies. The API, the
// dev-URL listeners and the SSH gateway share one Budget.
package netguard

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Budget bounds the connections open at once across the listeners it
// wraps, so that rtemu keeps the file descriptors it needs for its
// database, the Docker engine and the sandboxes. When it is full, a new
// connection takes the place of the oldest one that is not in use: one
// still sending its request (a slow or trickling client), one idle between
// requests, or an SSH connection not logged in. Connections in use (a
// handler running past its request body, a logged-in SSH connection) are
// never closed for room; when every place is in use, the new connection is
// closed at once.
type Budget struct {
	max     int
	log     *slog.Logger
	refused atomic.Int64
	evicted atomic.Int64
	warned  atomic.Int64 // unix seconds of the last warning

	mu    sync.Mutex
	conns map[*conn]struct{}
}

// NewBudget bounds connections to limit (at least 1).
func NewBudget(limit int, log *slog.Logger) *Budget {
	if log == nil {
		log = slog.Default()
	}
	return &Budget{max: max(limit, 1), log: log, conns: map[*conn]struct{}{}}
}

// headroom is what the budget leaves of the file limit for everything else
// (SQLite, the engine's connections, workspace files, dev-URL listeners).
func headroom(limit int) int { return max(256, limit/5) }

// ForFileLimit is a Budget sized to the process's file limit (raised to
// its hard limit first, where the system has one), with headroom.
func ForFileLimit(log *slog.Logger) *Budget {
	limit := RaiseFileLimit()
	return NewBudget(limit-headroom(limit), log)
}

// Max is the bound.
func (b *Budget) Max() int { return b.max }

// Open is how many connections are open now.
func (b *Budget) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// InUse is how many open connections are in use (serving a request, or
// held), which no new connection can displace.
func (b *Budget) InUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for c := range b.conns {
		if c.inUse.Load() > 0 {
			n++
		}
	}
	return n
}

// Refused counts connections closed on arrival for want of room; Evicted
// counts connections not in use closed to make room.
func (b *Budget) Refused() int64 { return b.refused.Load() }

// Evicted counts connections not in use closed to make room.
func (b *Budget) Evicted() int64 { return b.evicted.Load() }

// Listener wraps ln so that its connections count against the budget.
func (b *Budget) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, b: b} }

type listener struct {
	net.Listener
	b *Budget
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if bc := l.b.admit(c); bc != nil {
			return bc, nil
		}
	}
}

// admit makes room for c if it can, or closes it. A connection closed for
// room stays counted until its server has let go of it (its Close): the
// descriptor is only freed once the goroutine reading it has run, which on
// a busy machine can take a while, and a bound that forgot it at once would
// let descriptors run out. New connections may go past the bound by a
// sixteenth while such closes are under way.
func (b *Budget) admit(c net.Conn) *conn {
	bc := &conn{Conn: c, b: b, opened: time.Now()}
	b.mu.Lock()
	var victim *conn
	if len(b.conns) >= b.max {
		for o := range b.conns {
			if o.inUse.Load() == 0 && !o.evicting && (victim == nil || o.opened.Before(victim.opened)) {
				victim = o
			}
		}
		if victim != nil {
			victim.evicting = true
		}
		if victim == nil || len(b.conns) >= b.max+max(1, b.max/16) {
			b.mu.Unlock()
			if victim != nil {
				b.evicted.Add(1)
				victim.Conn.Close()
			}
			b.refused.Add(1)
			c.Close()
			b.warn()
			return nil
		}
	}
	b.conns[bc] = struct{}{}
	b.mu.Unlock()
	if victim != nil {
		b.evicted.Add(1)
		victim.Conn.Close() // its server sees the error and closes the wrapper
		b.warn()
	}
	return bc
}

// warn logs at most once a minute that the budget is full.
func (b *Budget) warn() {
	now := time.Now().Unix()
	last := b.warned.Load()
	if now-last < 60 || !b.warned.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn("too many connections open at once: idle and slow ones are closed for new ones",
		"max", b.max, "evictedSoFar", b.evicted.Load(), "refusedSoFar", b.refused.Load())
}

type conn struct {
	net.Conn
	b      *Budget
	opened time.Time
	inUse  atomic.Int32
	once   sync.Once

	evicting bool // closed for room, not yet let go of (guarded by b.mu)
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.b.mu.Lock()
		delete(c.b.conns, c)
		c.b.mu.Unlock()
	})
	return err
}

// Unwrap gives the accepted connection.
func (c *conn) Unwrap() net.Conn { return c.Conn }

// Hold marks c (a connection from a Budget's listener, or one wrapping it
// with an Unwrap method) in use until release is called: it is not closed
// to make room meanwhile. On any other connection it does nothing.
func Hold(c net.Conn) (release func()) {
	for c != nil {
		if bc, ok := c.(*conn); ok {
			bc.inUse.Add(1)
			var once sync.Once
			return func() { once.Do(func() { bc.inUse.Add(-1) }) }
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	return func() {}
}

type connKey struct{}

// ConnContext is an http.Server's ConnContext that lets Bodies find the
// request's connection.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func connOf(ctx context.Context) net.Conn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	return c
}

// IdleTimeout closes keep-alive connections idle this long.
const IdleTimeout = 60 * time.Second

// fallbackFileLimit is assumed where the limit cannot be read.
const fallbackFileLimit = 16384
