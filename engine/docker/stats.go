package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/engine"
)

// Stats is what the engine measures of one container.
type Stats = engine.Stats

// Stats samples a container's CPU, memory and disk use. It works on a paused
// container too (its CPU use is then zero).
//
// It takes one to two seconds: CPU use needs two samples, and the engine
// samples once a second. A one-shot stats call (ContainerStatsOneShot)
// carries no previous sample and still waits for the engine's next one, so
// two of them are no faster than one primed call.
func (d *Driver) Stats(ctx context.Context, name string) (Stats, error) {
	type inspected struct {
		res container.InspectResponse
		err error
	}
	sized := make(chan inspected, 1)
	go func() {
		// Computing the size walks the container's layer: do it meanwhile.
		res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{Size: true})
		sized <- inspected{res.Container, err}
	}()
	st, err := d.statsPrimed(ctx, name)
	ins := <-sized
	if err != nil {
		return Stats{}, err
	}
	if ins.err != nil {
		return Stats{}, wrap(ins.err, "inspect "+name)
	}
	var out Stats
	cpu, pre := st.CPUStats.CPUUsage.TotalUsage, st.PreCPUStats.CPUUsage.TotalUsage
	if dt := st.Read.Sub(st.PreRead); dt > 0 && !st.PreRead.IsZero() && cpu >= pre {
		out.CPUCores = float64(cpu-pre) / float64(dt.Nanoseconds())
	}
	mem := st.MemoryStats
	used := mem.Usage
	// cgroup v2 names it inactive_file, v1 total_inactive_file.
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := mem.Stats[k]; ok && v <= used {
			used -= v
			break
		}
	}
	out.MemoryUsedBytes, out.MemoryLimitBytes = int64(used), int64(mem.Limit)
	if ins.res.SizeRootFs != nil {
		out.DiskUsedBytes = *ins.res.SizeRootFs
	}
	if ins.res.State != nil {
		out.StartedAt, _ = time.Parse(time.RFC3339Nano, ins.res.State.StartedAt)
	}
	return out, nil
}

// statsPrimed reads one stats frame that carries the previous sample too.
func (d *Driver) statsPrimed(ctx context.Context, name string) (container.StatsResponse, error) {
	rd, err := d.cli.ContainerStats(ctx, name, client.ContainerStatsOptions{Stream: false, IncludePreviousSample: true})
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
