package netguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs h on a loopback listener wrapped by b (nil: unbounded).
func serve(t *testing.T, b *Budget, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if b != nil {
		ln = b.Listener(ln)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// trickle sends a POST announcing size bytes, then writes chunk bytes every
// gap until size are sent or the server closes the connection; it returns
// the server's status line ("" if none) and how long it all took.
func trickle(t *testing.T, addr string, size, chunk int, gap time.Duration) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	status := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(c).ReadString('\n')
		status <- strings.TrimSpace(line)
	}()
	for sent := 0; sent < size; sent += chunk {
		select {
		case s := <-status:
			return s, time.Since(start)
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte(strings.Repeat("x", min(chunk, size-sent)))); err != nil {
			break
		}
	}
	select {
	case s := <-status:
		return s, time.Since(start)
	case <-time.After(10 * time.Second):
		t.Fatal("no answer and no close")
		return "", 0
	}
}

func readAll(got *atomic.Value) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			got.Store(err)
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	})
}

func TestBodyDeadlines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		rule        BodyRule
		size, chunk int
		gap         time.Duration
		wantStatus  string
		wantTimeout bool
	}{
		// A byte every 100 ms: the 400 ms allowance runs out.
		{"trickle cut", BodyRule{Base: 400 * time.Millisecond}, 100, 1, 100 * time.Millisecond, "HTTP/1.1 408 Request Timeout", true},
		// 4 KB at ~20 KB/s takes longer than Base, but stays above MinRate.
		{"upload at the minimum rate", BodyRule{Base: 100 * time.Millisecond, MinRate: 5000}, 4000, 200, 10 * time.Millisecond, "HTTP/1.1 200 OK", false},
		// The same upload without a minimum rate is cut.
		{"upload without a rate", BodyRule{Base: 100 * time.Millisecond}, 4000, 200, 10 * time.Millisecond, "HTTP/1.1 408 Request Timeout", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got atomic.Value
			addr := serve(t, nil, Bodies(tc.rule, readAll(&got)))
			status, took := trickle(t, addr, tc.size, tc.chunk, tc.gap)
			if status != tc.wantStatus {
				t.Fatalf("status %q after %v, want %q", status, took, tc.wantStatus)
			}
			err, _ := got.Load().(error)
			if tc.wantTimeout != errors.Is(err, ErrBodyTimeout) {
				t.Fatalf("handler's read error %v", err)
			}
		})
	}
}

// TestDeadlineOffAfterBody: once the body is in, a long answer is not cut
// by the body's deadline (net/http's background read would hit it and
// cancel the request).
func TestDeadlineOffAfterBody(t *testing.T) {
	t.Parallel()
	addr := serve(t, nil, Bodies(BodyRule{Base: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Error(err)
			return
		}
		for i := range 6 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			fmt.Fprintf(w, "%d", i)
			w.(http.Flusher).Flush()
		}
	})))
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "012345" {
		t.Fatalf("long answer cut: %q", b)
	}
}

// TestBudget: when the bound is reached, a new connection takes the place
// of the oldest one not in use (one that never sent a request); when every
// connection is in use (a handler running), it is closed at once.
func TestBudget(t *testing.T) {
	t.Parallel()
	b := NewBudget(3, nil)
	unblock := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ConnContext: ConnContext, Handler: Bodies(DefaultBodyRule, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-unblock
		}
		fmt.Fprint(w, "ok")
	}))}
	go func() { _ = srv.Serve(b.Listener(ln)) }()
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	waitFor := func(what string, count func() int, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for count() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d %s, want %d", count(), what, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOpen := func(n int) { t.Helper(); waitFor("open", b.Open, n) }
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}

	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
		waitOpen(len(idle)) // in order, so the first is the oldest
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET with the budget full of idle connections: %v", err)
	}
	resp.Body.Close()
	if !closed(idle[0]) {
		t.Fatal("the oldest idle connection was not closed for the new one")
	}
	if b.Evicted() < 1 {
		t.Errorf("evicted %d", b.Evicted())
	}
	for _, c := range idle {
		c.Close()
	}
	waitOpen(0)

	// Three requests in progress: nothing can be evicted.
	held := make(chan error, 3)
	for range 3 {
		go func() {
			resp, err := http.Get("http://" + addr + "/hold")
			if err == nil {
				resp.Body.Close()
			}
			held <- err
		}()
	}
	// In use, not only open: a connection whose request has not come yet
	// is idle, and may rightly make room for the 4th.
	waitFor("in use", b.InUse, 3)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		refused := closed(c)
		c.Close()
		if refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 4th connection was served while 3 requests were in use")
		}
	}
	if b.Refused() < 1 {
		t.Errorf("refused %d", b.Refused())
	}
	close(unblock)
	for range 3 {
		if err := <-held; err != nil {
			t.Errorf("a request in use was cut: %v", err)
		}
	}
}

func TestHeadroom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ limit, want int }{{1024, 768}, {20000, 16000}, {1 << 20, 838861}} {
		if got := tc.limit - headroom(tc.limit); got != tc.want {
			t.Errorf("limit %d: budget %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestUnreadBodyAnsweredAtOnce: a handler that refuses a large body without
// reading it is answered at once (net/http closes such a connection rather
// than reading the body to its end; the deadline's wrapper must not hide
// the body from it).
func TestUnreadBodyAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	addr := serve(t, nil, Bodies(DefaultBodyRule, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})))
	status, took := trickle(t, addr, 200<<20, 1, 5*time.Second)
	if status != "HTTP/1.1 413 Request Entity Too Large" || took > 3*time.Second {
		t.Fatalf("%q after %v", status, took)
	}
}
