package sandbox_test

import (
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// Where the engine cannot enforce disk, the watcher measures a fleet a
// round at a time and in turn: every sandbox past its disk gets its one
// event, the ones beyond the first round too; where it can, nothing is
// measured and the container gets its size.
func TestDiskWatch(t *testing.T) {
	t.Parallel()
	t.Run("not enforced: every sandbox in turn", func(t *testing.T) {
		t.Parallel()
		e := started(t, func(c *sandbox.Config) { c.DiskWatch = 20 * time.Millisecond })
		const n = 20 // more than one round
		var ids []string
		for range n {
			sb := e.running(sandbox.CreateParams{})
			ids = append(ids, sb.ID)
			e.eng.SetDiskUsed(sb.ContainerName(), 11<<30) // past the default 10GB
		}
		testwait.Until(t, 10*time.Second, func() bool {
			for _, id := range ids {
				if !e.hasEvent(id, "disk") {
					return false
				}
			}
			return true
		}, "not every sandbox past its disk got a disk event")
		before := e.eng.Calls("DiskUsed")
		testwait.Until(t, 10*time.Second, func() bool { return e.eng.Calls("DiskUsed") >= before+2*n }, "the watcher stopped")
		for _, id := range ids {
			if got := countOf(e.events(id), "disk"); got != 1 {
				t.Errorf("%s: %d disk events for one crossing", id, got)
			}
		}
		if l, known := e.svc.DiskLimits(); !known || l.Enforced {
			t.Errorf("disk limits %+v, known %v", l, known)
		}
	})
	t.Run("enforced: the size goes to the engine", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(c *sandbox.Config) { c.DiskWatch = 20 * time.Millisecond })
		e.eng.SetDiskLimits(engine.DiskLimits{Enforced: true, StorageDriver: "btrfs"})
		e.start()
		size := "2GB"
		sb := e.running(sandbox.CreateParams{Disk: &size})
		if spec, ok := e.eng.Spec(sb.ContainerName()); !ok || spec.DiskBytes != 2<<30 {
			t.Errorf("container made with disk %d bytes, want %d", spec.DiskBytes, 2<<30)
		}
		e.eng.SetDiskUsed(sb.ContainerName(), 3<<30)
		e.running(sandbox.CreateParams{}) // time for rounds to pass
		if calls := e.eng.Calls("DiskUsed"); calls != 0 || e.hasEvent(sb.ID, "disk") {
			t.Errorf("an enforced disk was measured (%d calls) or reported", calls)
		}
	})
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
