package logring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLinesAreFormattedAndSecretsRedacted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		log  func(*slog.Logger)
		msg  string
		want string
	}{
		{"plain", func(l *slog.Logger) { l.Info("rtemu serving", "api", "http://127.0.0.1:7070", "n", 3) }, "rtemu serving", "api=http://127.0.0.1:7070 n=3"},
		{"quoted", func(l *slog.Logger) { l.Warn("failed", "err", errors.New("no such thing"), "empty", "") }, "failed", `err="no such thing" empty=""`},
		{"groups and with", func(l *slog.Logger) {
			l.With("sandbox", "sandbox-1").WithGroup("req").Info("done", "status", 200, slog.Group("t", "ms", 5))
		}, "done", "sandbox=sandbox-1 req.status=200 req.t.ms=5"},
		{"secrets", func(l *slog.Logger) {
			l.Info("auth", "apiKey", "rt_test_abc", "X-Api-Key", "k", "token", "t", "password", "p", "secretValue", "s", "key", "key-id-1")
		}, "auth", "apiKey=[redacted] X-Api-Key=[redacted] token=[redacted] password=[redacted] secretValue=[redacted] key=key-id-1"},
		{"long", func(l *slog.Logger) { l.Info(strings.Repeat("é", maxText)) }, strings.Repeat("é", maxText/2) + "…", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := New(10, slog.LevelInfo)
			tc.log(slog.New(r.Handler(slog.DiscardHandler)))
			got := r.Recent(-1)
			if len(got) != 1 || got[0].Msg != tc.msg || got[0].Attrs != tc.want {
				t.Fatalf("got %+v\nwant msg %q attrs %q", got, tc.msg, tc.want)
			}
		})
	}
}

// The ring keeps the newest lines at its level, and the real handler gets
// every record at its own level, as before.
func TestTeeAndBound(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := New(3, slog.LevelInfo)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.Debug("debug")
	for i := range 5 {
		log.Info(fmt.Sprint("info ", i))
	}
	log.Warn("warn")
	var msgs []string
	for _, e := range r.Recent(-1) {
		msgs = append(msgs, fmt.Sprint(e.Seq, " ", e.Level, " ", e.Msg))
	}
	if got := strings.Join(msgs, ", "); got != "4 INFO info 3, 5 INFO info 4, 6 WARN warn" {
		t.Errorf("ring %s", got)
	}
	if got := r.Recent(1); len(got) != 1 || got[0].Msg != "warn" {
		t.Errorf("Recent(1) %+v", got)
	}
	if s := out.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "msg=warn") {
		t.Errorf("the real handler wrote %q", s)
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	r := New(100, slog.LevelInfo)
	log := slog.New(r.Handler(slog.DiscardHandler))
	log.Info("before")
	ctx, cancel := context.WithCancel(t.Context())
	recent, lines, stop := r.Follow(ctx, 10)
	if len(recent) != 1 || recent[0].Msg != "before" {
		t.Fatalf("recent %+v", recent)
	}
	log.Info("after")
	select {
	case e := <-lines:
		if e.Msg != "after" || e.Seq != 2 {
			t.Errorf("followed %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no line followed")
	}
	// A follower that does not read loses lines; logging never waits.
	done := make(chan struct{})
	go func() {
		for range followBuffer * 2 {
			log.Info("flood")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging waited for a slow follower")
	}
	stop()
	cancel()
	// Once stopped, the follower is forgotten.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.subs)
		r.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower was not removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
