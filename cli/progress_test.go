package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// lockedBuffer is a bytes.Buffer read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCreateProgressShowsPull: while the sandbox's image is pulled, create's
// progress lines say how far the pull is.
func TestCreateProgressShowsPull(t *testing.T) {
	t.Parallel()
	const image = "rtemu-test/pulled-slowly:1"
	eng := emulatortest.Fake()
	eng.AddToRegistry(image)
	eng.SetPullLayers(2)
	gate := make(chan struct{})
	var layers atomic.Int32
	eng.AddHook(func(ctx context.Context, c fake.Call) error {
		if c.Method != "PullLayer" || layers.Add(1) != 2 {
			return nil
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	srv := emulatortest.New(t, emulatortest.WithEngine(eng), emulatortest.WithTemplate("slow", image))
	env := map[string]string{"RUNTOOLS_API_URL": srv.URL, "RUNTOOLS_API_KEY": srv.APIKey}
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"sandbox", "create", "--template", "slow"}, Env{Stdin: strings.NewReader(""),
			Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }, Version: "test"})
	}()
	want := ": creating: pulling " + image + ": 1 of 2 layers\n"
	testwait.Until(t, 10*time.Second, func() bool { return strings.Contains(stderr.String(), want) }, "create never printed %q", want)
	close(gate)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("create: exit %d: %q", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("create did not end once the pull did: %q", stderr.String())
	}
	id := strings.TrimSpace(stdout.String())
	if !strings.HasSuffix(stderr.String(), id+": running\n") {
		t.Fatalf("progress %q", stderr.String())
	}
}
