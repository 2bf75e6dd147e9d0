package dashboard_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/fake"
)

// A creating sandbox's row and details say how far its image's pull is;
// running, they say nothing of it.
func TestCreatingShowsProgress(t *testing.T) {
	t.Parallel()
	const image = "rtemu-test/pulled-slowly:1"
	eng := emulatortest.Fake()
	eng.AddToRegistry(image)
	eng.SetPullLayers(4)
	gate := make(chan struct{})
	var layers atomic.Int32
	eng.AddHook(func(ctx context.Context, c fake.Call) error {
		if c.Method != "PullLayer" || layers.Add(1) != 3 {
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
	d := connect(t, srv)
	d.openPage(openOpts{})
	d.live()
	id := d.create(map[string]any{"template": "slow", "name": "slow-one"})
	want := "pulling " + image + ": 2 of 4 layers"
	d.waitFor("the row's progress", fmt.Sprintf(`%s?.querySelector('[data-role="progress"]')?.textContent === %q`, row(id), want), 10*time.Second)
	d.selectRow(id)
	d.waitFor("the details' progress", fmt.Sprintf(`document.querySelector('#detail-progress')?.textContent === %q`, want), 10*time.Second)
	close(gate)
	d.rowStatus(id, "running", 10*time.Second)
	d.waitFor("no progress once running", fmt.Sprintf(`%s.querySelector('[data-role="progress"]') === null && document.querySelector('#detail-progress') === null`, row(id)), 10*time.Second)
}
