package netguard

import (
	"errors"
	"io"
	"net"
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
// the rule, and takes it off once the body has been read to its end, so a
// long answer (an exec, an event stream) is never cut by it. (net/http also
// clears the deadline when it starts its background read at the body's
// end; nothing here depends on that.) A handler that stops reading early
// leaves the deadline in place, which only matters to a later read of the
// same body.
func Bodies(rule BodyRule, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := connOf(r.Context())
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			// The request is all in: the connection is in use (a Budget
			// does not close it for room) until the handler returns.
			release := Hold(conn)
			defer release()
			h.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), rule: rule, start: time.Now(), conn: conn}
		defer b.handlerDone()
		if b.rc.SetReadDeadline(b.start.Add(rule.Base)) != nil {
			b.done = true // a connection without deadlines (a test recorder)
			h.ServeHTTP(w, r)
			return
		}
		orig := r.Body
		r.Body = b
		h.ServeHTTP(w, r)
		// net/http looks at the body's own type after the handler to see
		// how much is unread (a large unread body closes the connection
		// rather than being read to its end): give it back its own.
		r.Body = orig
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	rule  BodyRule
	start time.Time

	conn net.Conn

	mu      sync.Mutex
	read    int64
	done    bool   // body ended or handler returned: the controller is not touched again
	release func() // set once the body is in: the connection is in use
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
		b.release = Hold(b.conn)
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
	if b.release != nil {
		b.release()
	}
	b.mu.Unlock()
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
