package emulator_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// Where the engine cannot enforce disk (this machine's fuse-overlayfs),
// files past a sandbox's disk are noticed: one "disk" event, the stats say
// so, and once the files are gone again the stats say that too.
func TestDiskPastItsSizeIsSaid(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulatortest.WithDiskWatch(200*time.Millisecond))
	id := c.create(map[string]any{"resources": map[string]any{"disk": "1GB"}})["id"].(string)
	c.waitStatus(id, "running")
	if limits, known := c.srv.Service().DiskLimits(); !known {
		t.Fatal("a create did not learn whether the engine enforces disk")
	} else if limits.Enforced {
		t.Skipf("this engine enforces disk (%s): writes past it fail instead", limits.StorageDriver)
	}
	// The answer's data: the hosted stats, and rtemu's disk facts beside.
	stats := func() map[string]any {
		d := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/stats", nil).Data()
		for k, v := range d["stats"].(map[string]any) {
			d[k] = v
		}
		return d
	}
	if s := stats(); s["diskLimitEnforced"] != false || s["diskOverLimit"] != false {
		t.Fatalf("stats of a fresh sandbox: %v", s)
	}
	// A sparse file: the engine counts its size (as it counts files
	// written), without the test writing 2 GB.
	c.sh(id, "dd if=/dev/zero of=/big bs=1M count=0 seek=2048 2>/dev/null && ls -l /big")
	diskEvents := func() (n int, last map[string]any) {
		for _, e := range c.activity(id) {
			if e["eventType"] == "disk" {
				n++
				last = e
			}
		}
		return n, last
	}
	testwait.Until(t, 30*time.Second, func() bool { n, _ := diskEvents(); return n > 0 },
		"no disk event after the files went past the disk")
	if s := stats(); s["diskOverLimit"] != true || s["diskUsedBytes"].(float64) <= s["diskTotalBytes"].(float64) {
		t.Errorf("stats past the disk: %v", s)
	}
	// Two more stats answers (each takes a second or more: CPU needs two
	// samples), and so ten rounds of the watcher or more: still one event
	// for one crossing.
	stats()
	stats()
	if n, last := diskEvents(); n != 1 || last["severity"] != "warning" {
		t.Errorf("%d disk events (last %v), want one warning", n, last)
	}
	c.sh(id, "rm /big")
	if s := stats(); s["diskOverLimit"] != false {
		t.Errorf("stats after the files went: %v", s)
	}
}
