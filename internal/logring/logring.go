// Package logring keeps rtemu's recent log lines in memory for the
// dashboard: a slog.Handler that passes every record on to the real one and
// keeps the newest in a bounded ring, which followers can watch live.
package logring

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Entry is one log line.
type Entry struct {
	// Seq numbers the lines from 1; a follower that was too slow sees a gap.
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	// Attrs are the line's attributes as slog's text handler writes them
	// (k=v, groups as g.k=v), those named like secrets redacted.
	Attrs string `json:"attrs,omitempty"`
}

// maxText bounds a line's message and attributes, so the ring's memory is
// bounded too (size × 2 × maxText).
const maxText = 2048

// followBuffer is how many lines a follower may be behind before it loses
// some (a slow reader never slows rtemu's logging).
const followBuffer = 256

// Ring is the newest lines, at most its size.
type Ring struct {
	level slog.Level

	mu      sync.Mutex
	entries []Entry // circular once full
	next    int     // where the next line goes
	seq     uint64
	subs    map[chan Entry]struct{}
}

// New keeps the newest size lines at level and above.
func New(size int, level slog.Level) *Ring {
	return &Ring{level: level, entries: make([]Entry, 0, max(size, 1)), subs: map[chan Entry]struct{}{}}
}

func (r *Ring) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e.Seq = r.seq
	if len(r.entries) < cap(r.entries) {
		r.entries = append(r.entries, e)
	} else {
		r.entries[r.next] = e
	}
	r.next = (r.next + 1) % cap(r.entries)
	for ch := range r.subs {
		select {
		case ch <- e:
		default: // behind: this one loses the line
		}
	}
}

// recentLocked is the newest n lines, oldest first.
func (r *Ring) recentLocked(n int) []Entry {
	out := make([]Entry, 0, len(r.entries))
	if len(r.entries) < cap(r.entries) {
		out = append(out, r.entries...)
	} else {
		out = append(append(out, r.entries[r.next:]...), r.entries[:r.next]...)
	}
	if n >= 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Recent is the newest n lines (n < 0: all kept), oldest first.
func (r *Ring) Recent(n int) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recentLocked(n)
}

// Follow is Recent(n) and, from the same moment, every new line on the
// channel until stop is called (or ctx ends).
func (r *Ring) Follow(ctx context.Context, n int) (recent []Entry, lines <-chan Entry, stop func()) {
	ch := make(chan Entry, followBuffer)
	r.mu.Lock()
	recent = r.recentLocked(n)
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}()
	return recent, ch, cancel
}

// Handler tees next: every record goes on to next as before, and those at
// the ring's level or above are kept.
func (r *Ring) Handler(next slog.Handler) slog.Handler {
	return &handler{ring: r, next: next}
}

type handler struct {
	ring   *Ring
	next   slog.Handler
	attrs  string // WithAttrs so far, formatted
	prefix string // WithGroup so far, "a.b."
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.ring.level || h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= h.ring.level {
		b := []byte(h.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			b = appendAttr(b, h.prefix, a)
			return true
		})
		h.ring.add(Entry{Time: rec.Time, Level: rec.Level.String(), Msg: cut(rec.Message), Attrs: cut(string(b))})
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	b := []byte(h.attrs)
	for _, a := range as {
		b = appendAttr(b, h.prefix, a)
	}
	c.attrs = string(b)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}

// secretName matches attribute names whose values must not be shown, even
// if something logged one by mistake.
var secretName = regexp.MustCompile(`(?i)(api.?key|secret|token|passw|authorization|cookie|private.?key|credential)`)

func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			b = appendAttr(b, p, g)
		}
		return b
	}
	v := a.Value.String()
	if a.Value.Kind() == slog.KindTime {
		v = a.Value.Time().Format(time.RFC3339Nano)
	}
	if secretName.MatchString(a.Key) {
		v = "[redacted]"
	}
	if len(b) > 0 {
		b = append(b, ' ')
	}
	b = append(b, prefix...)
	b = append(b, a.Key...)
	b = append(b, '=')
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '=' || r == '"' || r == utf8.RuneError }) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// cut bounds a text at maxText bytes, on a character boundary.
func cut(s string) string {
	if len(s) <= maxText {
		return s
	}
	i := maxText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
