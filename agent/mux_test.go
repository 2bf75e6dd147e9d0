package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// muxPair joins a host-side Mux to an agent-side one over pipes; the agent
// side answers opens with handler.
func muxPair(t *testing.T, handler func(s *Stream, req []byte)) (host *Mux, closePipes func()) {
	t.Helper()
	h2aR, h2aW := io.Pipe()
	a2hR, a2hW := io.Pipe()
	host = NewMux(a2hR, h2aW, nil)
	NewMux(h2aR, a2hW, handler)
	closePipes = func() { h2aW.Close(); a2hW.Close() }
	t.Cleanup(closePipes)
	return host, closePipes
}

// echo accepts every stream and sends back what it reads, then half-closes.
func echo(s *Stream, req []byte) {
	if string(req) == "refuse" {
		_ = s.Refuse("nothing listens here")
		return
	}
	_ = s.Accept("echo")
	_, _ = io.Copy(s, s)
	_ = s.CloseWrite()
}

func TestMuxStreams(t *testing.T) {
	t.Parallel()
	host, _ := muxPair(t, echo)
	const n, size = 8, 2 << 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := host.Open(context.Background(), []byte("echo"))
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			defer s.Close()
			if s.RemoteAddr().String() != "echo" {
				t.Errorf("remote addr %v", s.RemoteAddr())
			}
			payload := make([]byte, size)
			_, _ = rand.Read(payload)
			go func() { _, _ = s.Write(payload); _ = s.CloseWrite() }()
			got, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(got, payload) {
				t.Errorf("stream %d: %d of %d bytes back, err %v", i, len(got), size, err)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for host.Streams() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if host.Streams() != 0 {
		t.Errorf("%d streams still known after all ended", host.Streams())
	}
}

func TestMuxRefused(t *testing.T) {
	t.Parallel()
	host, _ := muxPair(t, echo)
	_, err := host.Open(context.Background(), []byte("refuse"))
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Msg != "nothing listens here" {
		t.Fatalf("open: %v, want a RefusedError", err)
	}
}

// A stream nobody reads holds only its own window: another stream on the
// same pipe keeps flowing.
func TestMuxSlowReaderHoldsOnlyItsStream(t *testing.T) {
	t.Parallel()
	host, _ := muxPair(t, func(s *Stream, req []byte) {
		_ = s.Accept("x")
		if string(req) == "flood" {
			_, _ = s.Write(make([]byte, 4*MuxWindow)) // blocks once the window is full
			return
		}
		echo(s, req)
	})
	flood, err := host.Open(context.Background(), []byte("flood"))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	s, err := host.Open(context.Background(), []byte("echo"))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("still flowing")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 13)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "still flowing" {
		t.Fatalf("echo beside a full stream: %q %v", buf, err)
	}
}

func TestMuxCloseDeadlineAndPipeEnd(t *testing.T) {
	t.Parallel()
	closed := make(chan error, 1)
	host, closePipes := muxPair(t, func(s *Stream, req []byte) {
		_ = s.Accept("x")
		_, err := io.ReadAll(s)
		closed <- err
	})
	s, err := host.Open(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = s.Close()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("the other side read a clean EOF after a Close (a reset)")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other side never saw the Close")
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}

	s2, err := host.Open(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	closePipes()
	if _, err := s2.Read(make([]byte, 1)); !errors.Is(err, ErrMuxClosed) {
		t.Fatalf("read after the pipe ended: %v", err)
	}
	if _, err := host.Open(context.Background(), nil); !errors.Is(err, ErrMuxClosed) {
		t.Fatalf("open after the pipe ended: %v", err)
	}
}
