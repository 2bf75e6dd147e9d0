package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

// TestDevURLPorts: a host port belongs to one dev URL; a destroyed
// sandbox's record gives way, and only live sandboxes' URLs are listed.
func TestDevURLPorts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for _, sb := range []*sandbox.Sandbox{
		{ID: "sandbox-aaaaaaaaaaaa", Template: "t", Status: sandbox.StatusDestroyed, CreatedAt: now, UpdatedAt: now},
		{ID: "sandbox-bbbbbbbbbbbb", Template: "t", Status: sandbox.StatusRunning, CreatedAt: now, UpdatedAt: now},
	} {
		if err := st.InsertSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	dead := sandbox.DevURL{SandboxID: "sandbox-aaaaaaaaaaaa", Port: 3000, HostPort: 45000}
	live := sandbox.DevURL{SandboxID: "sandbox-bbbbbbbbbbbb", Port: 8080, HostPort: 45000}
	if err := st.SetDevURLPort(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.DevURLs(ctx); len(got) != 0 {
		t.Errorf("a destroyed sandbox's URL is listed: %v", got)
	}
	if err := st.SetDevURLPort(ctx, live); err != nil {
		t.Fatalf("taking over a stale host port: %v", err)
	}
	if _, err := st.DevURLPort(ctx, dead.SandboxID, dead.Port); !errors.Is(err, sandbox.ErrNoRecord) {
		t.Errorf("the stale record is still there: %v", err)
	}
	live.HostPort = 45001 // moved: the port was taken at a restart
	if err := st.SetDevURLPort(ctx, live); err != nil {
		t.Fatal(err)
	}
	if hp, err := st.DevURLPort(ctx, live.SandboxID, live.Port); err != nil || hp != 45001 {
		t.Errorf("host port %d, %v", hp, err)
	}
	if got, err := st.DevURLs(ctx); err != nil || !reflect.DeepEqual(got, []sandbox.DevURL{live}) {
		t.Errorf("DevURLs %v, %v", got, err)
	}
	if err := st.DeleteDevURLs(ctx, live.SandboxID); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.DevURLs(ctx); len(got) != 0 {
		t.Errorf("after delete: %v", got)
	}
}
