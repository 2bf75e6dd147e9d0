package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// startLogged starts rtemu with its log, at info level, going to a buffer.
func startLogged(t *testing.T, keys ...string) (*server.Server, *emulatortest.Buffer) {
	t.Helper()
	emulatortest.SkipIfNoDocker(t)
	ctx := context.Background()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs := &emulatortest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := server.Start(ctx, config.Config{
		Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: t.TempDir(), APIKeys: keys,
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}},
	}, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	return srv, logs
}

// An open dashboard must not hold up rtemu's shutdown: http.Server.Shutdown
// waits for every open answer, and the event stream never ends by itself.
func TestShutdownEndsOpenEventStreams(t *testing.T) {
	t.Parallel()
	srv, _ := startLogged(t)
	resp, err := http.Get(srv.URL + "/_emulator/events?key=" + emulatortest.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a dashboard open", d)
	}
	// The client sees the stream end.
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Body); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the event stream did not end at shutdown")
	}
}

// The feed takes the key in its query (EventSource sends no headers); the
// log must never show it.
func TestEventStreamKeyNeverLogged(t *testing.T) {
	t.Parallel()
	good := "rt_live_" + strings.Repeat("G", 32)
	bad := "rt_live_" + strings.Repeat("B", 32)
	srv, logs := startLogged(t, good)
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	for key, want := range map[string]int{good: 200, bad: 401} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/_emulator/events?key="+key, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("status %d, want %d", resp.StatusCode, want)
		}
		cancel()
		resp.Body.Close()
	}
	// The request lines are written when the streams end.
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "path=/_emulator/events") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	if strings.Count(out, "path=/_emulator/events") < 2 {
		t.Fatalf("no request lines for the feed in the log:\n%s", out)
	}
	for _, key := range []string{good, bad, strings.Repeat("G", 32), strings.Repeat("B", 32)} {
		if strings.Contains(out, key) {
			t.Errorf("the log shows a key:\n%s", out)
		}
	}
}
