package emulator_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// TestCreatingShowsPullProgress: while a create pulls its image, GET shows
// how far the pull is in "progress"; once running, it is gone.
func TestCreatingShowsPullProgress(t *testing.T) {
	t.Parallel()
	const image = "rtemu-test/pulled-slowly:1"
	eng := emulatortest.Fake()
	eng.AddToRegistry(image)
	eng.SetPullLayers(3)
	// The pull holds before its second layer is done.
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
	c := startClient(t, emulatortest.WithEngine(eng), emulatortest.WithTemplate("slow", image))
	id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "slow"}).Data()["id"].(string)
	want := "pulling " + image + ": 1 of 3 layers"
	testwait.Check(t, 10*time.Second, func() error {
		sb := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data()
		if sb["status"] != "creating" || sb["progress"] != want {
			return fmt.Errorf("sandbox is %v with progress %v, want creating with %q", sb["status"], sb["progress"], want)
		}
		return nil
	})
	close(gate)
	if sb := c.waitStatus(id, "running"); sb["progress"] != nil {
		t.Fatalf("running sandbox has progress %v", sb["progress"])
	}
}
