// Package netguard keeps slow or many clients from starving rtemu: a
// bound on the connections served at once, kept under the process's file
// limit (which it raises), and deadlines on request bodies. The API, the
// dev-URL listeners and the SSH gateway share one Budget.
package netguard

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Budget bounds the connections open at once across the listeners it
// wraps. A connection beyond the bound is closed as soon as it is accepted:
// the client sees its connection refused at once rather than waiting in the
// kernel's queue, and rtemu keeps the file descriptors it needs for its
// database, the Docker engine and the sandboxes.
type Budget struct {
	max     int64
	open    atomic.Int64
	refused atomic.Int64
	log     *slog.Logger
	warned  atomic.Int64 // unix seconds of the last warning
}

// NewBudget bounds connections to limit (at least 1).
func NewBudget(limit int, log *slog.Logger) *Budget {
	if log == nil {
		log = slog.Default()
	}
	return &Budget{max: int64(max(limit, 1)), log: log}
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
func (b *Budget) Max() int { return int(b.max) }

// Open is how many connections are open now.
func (b *Budget) Open() int { return int(b.open.Load()) }

// Refused counts connections closed for want of room.
func (b *Budget) Refused() int64 { return b.refused.Load() }

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
		if l.b.open.Add(1) > l.b.max {
			l.b.open.Add(-1)
			l.b.refused.Add(1)
			c.Close()
			l.b.warn()
			continue
		}
		return &conn{Conn: c, b: l.b}, nil
	}
}

// warn logs at most once a minute that connections are being refused.
func (b *Budget) warn() {
	now := time.Now().Unix()
	last := b.warned.Load()
	if now-last < 60 || !b.warned.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn("too many connections open at once: new ones are closed", "max", b.max, "refusedSoFar", b.refused.Load())
}

type conn struct {
	net.Conn
	b    *Budget
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.b.open.Add(-1) })
	return err
}

// Unwrap gives the accepted connection (for TCP options).
func (c *conn) Unwrap() net.Conn { return c.Conn }

// IdleTimeout closes keep-alive connections idle this long.
const IdleTimeout = 60 * time.Second

// fallbackFileLimit is assumed where the limit cannot be read.
const fallbackFileLimit = 16384
