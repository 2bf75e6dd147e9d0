package emulator_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStatsAPI measures a sandbox from the engine and checks each number
// against what the test makes it do.
func TestStatsAPI(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(map[string]any{"resources": map[string]any{"vcpus": 1, "memory": "512MB", "disk": "2GB"}})["id"].(string)
	stats := func() map[string]float64 {
		t.Helper()
		d := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/stats", nil).Data()
		if d["sandboxId"] != id {
			t.Fatalf("sandboxId %v", d["sandboxId"])
		}
		out := map[string]float64{}
		for k, v := range d["stats"].(map[string]any) {
			out[k] = v.(float64)
		}
		for _, k := range []string{"cpuPercent", "memoryUsedBytes", "memoryTotalBytes", "diskUsedBytes", "diskTotalBytes", "uptime"} {
			if _, ok := out[k]; !ok {
				t.Fatalf("no %s in %v", k, out)
			}
		}
		return out
	}
	idle := stats()
	if idle["memoryTotalBytes"] != 512<<20 || idle["diskTotalBytes"] != 2<<30 {
		t.Errorf("totals %v", idle)
	}
	if idle["memoryUsedBytes"] <= 0 || idle["memoryUsedBytes"] >= idle["memoryTotalBytes"] || idle["diskUsedBytes"] <= 0 {
		t.Errorf("used %v", idle)
	}
	if idle["cpuPercent"] > 50 {
		t.Errorf("idle sandbox at %v%% CPU", idle["cpuPercent"])
	}

	c.sh(id, "dd if=/dev/zero of=/tmp/blob bs=1M count=30 2>/dev/null; (while :; do :; done) >/dev/null 2>&1 &")
	busy := stats()
	if grown := busy["diskUsedBytes"] - idle["diskUsedBytes"]; grown < 30<<20 {
		t.Errorf("disk grew by %v bytes after writing 30 MiB", grown)
	}
	// One vCPU kept busy by the loop, of which a saturated host may leave
	// it only a few per cent: a sample must show the loop (more than zero)
	// and no more CPU time than the sandbox's own cgroup counted around it
	// (a sample spans over half a second: the engine samples a second
	// apart, less what a busy round of its collector delays the first read).
	for deadline := time.Now().Add(time.Minute); ; {
		before := cgroupCPU(c, id)
		busy = stats()
		used := cgroupCPU(c, id) - before
		if busy["cpuPercent"]/100*0.5 > used.Seconds()+0.05 {
			t.Fatalf("sample %v%% of one vCPU, but the cgroup counted %v around it", busy["cpuPercent"], used)
		}
		if busy["cpuPercent"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy loop on one vCPU shows %v%%", busy["cpuPercent"])
		}
	}
	if busy["cpuPercent"] > 100 {
		t.Errorf("cpuPercent %v", busy["cpuPercent"])
	}
	if busy["uptime"] < idle["uptime"] || busy["uptime"] > 120 {
		t.Errorf("uptime %v then %v", idle["uptime"], busy["uptime"])
	}

	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	if frozen := stats(); frozen["cpuPercent"] > 5 {
		t.Errorf("paused sandbox at %v%% CPU", frozen["cpuPercent"])
	}

	if r := c.do("GET", "/v1/sandboxes/sandbox-000000000000/stats", nil); r.Status != 404 {
		t.Errorf("unknown sandbox: %d %s", r.Status, r.Body)
	}
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	if r := c.do("GET", "/v1/sandboxes/"+id+"/stats", nil); r.Status != 409 || r.ErrCode() != "conflict" {
		t.Errorf("destroyed sandbox: %d %s", r.Status, r.Body)
	}
}

// cgroupCPU is the CPU time the sandbox's cgroup has used, read inside it
// (cgroup v1's cpuacct.usage in nanoseconds, else v2's usage_usec).
func cgroupCPU(c *client, id string) time.Duration {
	c.t.Helper()
	out := c.sh(id, "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat | sed 's/$/000/'")
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		c.t.Fatalf("cgroup CPU usage %q: %v", out, err)
	}
	return time.Duration(n)
}
