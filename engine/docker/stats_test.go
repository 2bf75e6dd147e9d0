package docker_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

// TestStats checks each measure against what the test makes the container
// do: a busy loop for CPU, a file for disk, and the limits of newContainer.
func TestStats(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	ctx := context.Background()
	idle, err := d.Stats(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if idle.MemoryLimitBytes != 256<<20 {
		t.Errorf("memory limit %d, want %d", idle.MemoryLimitBytes, 256<<20)
	}
	if idle.MemoryUsedBytes <= 0 || idle.MemoryUsedBytes >= idle.MemoryLimitBytes {
		t.Errorf("memory used %d", idle.MemoryUsedBytes)
	}
	if idle.DiskUsedBytes <= 0 {
		t.Errorf("disk used %d", idle.DiskUsedBytes)
	}
	if age := time.Since(idle.StartedAt); age < 0 || age > time.Minute {
		t.Errorf("started at %v", idle.StartedAt)
	}
	if idle.CPUCores > 0.5 {
		t.Errorf("idle container busy: %.2f cores", idle.CPUCores)
	}

	if _, _, code, err := run(t, d, ctx, name, "dd if=/dev/zero of=/tmp/blob bs=1M count=20 2>/dev/null && (while :; do :; done) >/dev/null 2>&1 &"); err != nil || code != 0 {
		t.Fatalf("start load: %d %v", code, err)
	}
	// On a saturated host the loop may get only a few per cent of a core, so
	// no share is asserted; a sample must show the loop (more than zero) and
	// no more CPU time than the container's own cgroup counted around it.
	// The engine samples a second apart, less what a busy round of its
	// collector delays the first read: a sample spans over half a second.
	var busy docker.Stats
	for deadline := time.Now().Add(time.Minute); ; {
		before := cgroupCPU(t, d, ctx, name)
		var err error
		if busy, err = d.Stats(ctx, name); err != nil {
			t.Fatal(err)
		}
		used := cgroupCPU(t, d, ctx, name) - before
		if busy.CPUCores > 1.2 {
			t.Fatalf("busy loop: %.2f cores, above the 1-core limit", busy.CPUCores)
		}
		if busy.CPUCores*0.5 > used.Seconds()+0.05 {
			t.Fatalf("sample %.3f cores over at least 0.5 s, but the cgroup counted %v around it", busy.CPUCores, used)
		}
		if busy.CPUCores > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy loop never seen: last sample %.2f cores", busy.CPUCores)
		}
	}
	if grown := busy.DiskUsedBytes - idle.DiskUsedBytes; grown < 20<<20 {
		t.Errorf("disk grew by %d bytes after writing 20 MiB", grown)
	}

	if err := d.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	frozen, err := d.Stats(ctx, name)
	if err != nil {
		t.Fatalf("stats of a paused container: %v", err)
	}
	if frozen.CPUCores > 0.05 {
		t.Errorf("paused container busy: %.2f cores", frozen.CPUCores)
	}

	if _, err := d.Stats(ctx, "rtemu-drivertest-missing"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("stats of a missing container: %v", err)
	}
}

// cgroupCPU is the CPU time the container's cgroup has used, read inside it
// (cgroup v1's cpuacct.usage in nanoseconds, else v2's usage_usec).
func cgroupCPU(t *testing.T, d *docker.Driver, ctx context.Context, name string) time.Duration {
	t.Helper()
	out, _, code, err := run(t, d, ctx, name, "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat | sed 's/$/000/'")
	n, perr := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || code != 0 || perr != nil {
		t.Fatalf("cgroup CPU usage: %q %d %v %v", out, code, err, perr)
	}
	return time.Duration(n)
}
