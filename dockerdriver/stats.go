package dockerdriver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Stats is what the engine measures of one container.
type Stats struct {
	// CPUCores is how many CPU cores the container kept busy, on average,
	// over the sampling window (1.5 = one and a half cores).
	CPUCores float64
	// MemoryUsedBytes leaves out the page cache the kernel can drop at once
	// (inactive files), as `docker stats` does.
	MemoryUsedBytes  int64
	MemoryLimitBytes int64
	// DiskUsedBytes is the container's root filesystem: its image plus what
	// was written to it (SizeRootFs). Bind mounts are not counted.
	DiskUsedBytes int64
	StartedAt     time.Time
}

// cpuSampleWindow is the time between the two samples CPU use is computed
// from. A one-shot stats call carries no previous sample (precpu_stats is
// empty), and the streaming call's own second sample takes a full second.
const cpuSampleWindow = 250 * time.Millisecond

// Stats samples a container's CPU, memory and disk use. It works on a paused
// container too (its CPU use is then zero).
func (d *Driver) Stats(ctx context.Context, name string) (Stats, error) {
	first, err := d.statsOnce(ctx, name)
	if err != nil {
		return Stats{}, err
	}
	select {
	case <-ctx.Done():
		return Stats{}, ctx.Err()
	case <-time.After(cpuSampleWindow):
	}
	second, err := d.statsOnce(ctx, name)
	if err != nil {
		return Stats{}, err
	}
	ins, _, err := d.cli.ContainerInspectWithRaw(ctx, name, true)
	if err != nil {
		return Stats{}, wrap(err, "inspect "+name)
	}
	var out Stats
	if dt := second.Read.Sub(first.Read); dt > 0 && second.CPUStats.CPUUsage.TotalUsage >= first.CPUStats.CPUUsage.TotalUsage {
		out.CPUCores = float64(second.CPUStats.CPUUsage.TotalUsage-first.CPUStats.CPUUsage.TotalUsage) / float64(dt.Nanoseconds())
	}
	mem := second.MemoryStats
	used := mem.Usage
	// cgroup v2 names it inactive_file, v1 total_inactive_file.
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := mem.Stats[k]; ok && v <= used {
			used -= v
			break
		}
	}
	out.MemoryUsedBytes, out.MemoryLimitBytes = int64(used), int64(mem.Limit)
	if ins.SizeRootFs != nil {
		out.DiskUsedBytes = *ins.SizeRootFs
	}
	if ins.State != nil {
		out.StartedAt, _ = time.Parse(time.RFC3339Nano, ins.State.StartedAt)
	}
	return out, nil
}

func (d *Driver) statsOnce(ctx context.Context, name string) (container.StatsResponse, error) {
	rd, err := d.cli.ContainerStatsOneShot(ctx, name)
	if err != nil {
		return container.StatsResponse{}, wrap(err, "stats "+name)
	}
	defer rd.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(rd.Body).Decode(&st); err != nil {
		return container.StatsResponse{}, fmt.Errorf("stats %s: %w", name, err)
	}
	return st, nil
}
