package netguard

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// BodyRule is how long a request body may take to arrive: Base for the
// whole body, plus one second for every MinRate bytes read (so an upload
// that keeps moving at MinRate or faster is never cut, and a client
// trickling a byte now and then is dropped after Base).
type BodyRule struct {
	Base    time.Duration
	MinRate int // bytes per second; 0: Base is the whole allowance
}

// DefaultBodyRule: a minute for a body, longer for uploads arriving at
// 64 KiB/s or faster.
var DefaultBodyRule = BodyRule{Base: 60 * time.Second, MinRate: 64 << 10}

// ErrBodyTimeout is what a handler reads from a body that came too slowly.
var ErrBodyTimeout = errors.New("the request body did not arrive in time")

// Bodies puts a read deadline on every request body's connection, following
// the rule, and takes it off once the body has been read to its end: a
// deadline left in place would end a long answer (an exec, an event stream)
// when net/http's background read of the idle connection hits it.
func Bodies(rule BodyRule, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), rule: rule, start: time.Now()}
		if b.rc.SetReadDeadline(b.start.Add(rule.Base)) != nil {
			h.ServeHTTP(w, r) // a connection without deadlines (a test recorder)
			return
		}
		r.Body = b
		h.ServeHTTP(w, r)
		b.handlerDone()
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	rule  BodyRule
	start time.Time

	mu   sync.Mutex
	read int64
	done bool // body ended or handler returned: the controller is not touched again
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	b.read += int64(n)
	switch {
	case err == io.EOF:
		// All in: no deadline from now on (the next request on the
		// connection gets the server's own).
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && isTimeout(err):
		return n, ErrBodyTimeout
	case n > 0 && b.rule.MinRate > 0:
		extra := time.Duration(b.read) * time.Second / time.Duration(b.rule.MinRate)
		_ = b.rc.SetReadDeadline(b.start.Add(b.rule.Base + extra))
	}
	return n, err
}

// handlerDone: after the handler, net/http owns the connection again.
func (b *deadlineBody) handlerDone() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
