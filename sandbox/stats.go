package sandbox

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// Stats is a sandbox's use of its resources, measured by the engine.
type Stats struct {
	// CPUPercent is the share of the sandbox's vCPUs kept busy over the
	// engine's last sampling second: 100 means all of them.
	CPUPercent       float64
	MemoryUsedBytes  int64
	MemoryTotalBytes int64 // the memory the sandbox asked for
	// DiskUsedBytes is the container's filesystem (image plus changes);
	// mounted workspaces are not counted.
	DiskUsedBytes  int64
	DiskTotalBytes int64 // the disk the sandbox asked for
	// DiskEnforced: the engine holds the sandbox to DiskTotalBytes. Where
	// it cannot, DiskOverLimit says the files are past it (disk.go).
	DiskEnforced  bool
	DiskOverLimit bool
	// Uptime is the time since the sandbox's container started, paused
	// time included.
	Uptime time.Duration
}

// Stats measures a running or paused sandbox. Reading stats is not activity:
// a dashboard polling them does not keep a sandbox awake.
func (s *Service) Stats(ctx context.Context, ref string) (*Sandbox, Stats, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return nil, Stats{}, err
	}
	switch sb.Status {
	case StatusRunning, StatusPausing, StatusPaused, StatusResuming:
	default:
		return nil, Stats{}, conflict("sandbox %s is %s; stats are measured while it is running or paused", sb.ID, sb.Status)
	}
	raw, err := s.engine.Stats(ctx, sb.ContainerName())
	if errors.Is(err, engine.ErrNotFound) {
		return nil, Stats{}, conflict("sandbox %s has lost its container", sb.ID)
	}
	if err != nil {
		return nil, Stats{}, s.engineErr(err)
	}
	out := Stats{MemoryUsedBytes: raw.MemoryUsedBytes, DiskUsedBytes: raw.DiskUsedBytes}
	out.MemoryTotalBytes, _ = ParseSize(sb.Resources.Memory)
	if out.MemoryTotalBytes == 0 {
		out.MemoryTotalBytes = raw.MemoryLimitBytes
	}
	out.DiskTotalBytes, _ = ParseSize(sb.Resources.Disk)
	if l, known := s.DiskLimits(); known && l.Enforced {
		out.DiskEnforced = true
	} else if out.DiskTotalBytes > 0 && out.DiskUsedBytes > 0 {
		out.DiskOverLimit = s.noteDiskUse(ctx, sb.ID, out.DiskUsedBytes, out.DiskTotalBytes)
	}
	// The container's CPU limit is the vCPUs asked for, clamped to the
	// host's CPUs (see makeContainer).
	cpus := float64(s.clampCPUs(sb.Resources.VCPUs))
	if cpus > 0 {
		out.CPUPercent = math.Round(min(max(raw.CPUCores/cpus*100, 0), 100)*10) / 10
	}
	if !raw.StartedAt.IsZero() {
		out.Uptime = max(s.now().Sub(raw.StartedAt), 0)
	}
	return sb, out, nil
}
