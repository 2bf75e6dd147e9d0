package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// A sandbox's disk is enforced where the engine's storage driver can
// (overlay2 on xfs with project quotas, btrfs, zfs): its container is made
// with that size, and writes past it fail with ENOSPC as on a real disk.
// Elsewhere (fuse-overlayfs, overlay2 on ext4) rtemu watches each running
// sandbox's files and, past its disk, records a "disk" event once, shows
// it in stats and the dashboard, and says so in rtemu doctor.

// DefaultDiskWatch is how often the files of sandboxes are measured where
// the engine cannot enforce their disk.
const DefaultDiskWatch = 30 * time.Second

type diskState struct {
	mu     sync.Mutex
	limits *engine.DiskLimits // nil until the engine was asked
	over   map[string]bool    // sandboxes found past their disk
	every  time.Duration
	next   int // where the next round of measurements starts
}

// diskRound bounds the sandboxes measured in one round: the engine walks a
// container's files to size them, so a fleet is measured a part at a time.
const diskRound = 16

// DiskLimits says whether the engine enforces disk sizes; known is false
// until a create has asked it.
func (s *Service) DiskLimits() (limits engine.DiskLimits, known bool) {
	s.disk.mu.Lock()
	defer s.disk.mu.Unlock()
	if s.disk.limits == nil {
		return engine.DiskLimits{}, false
	}
	return *s.disk.limits, true
}

// diskBytes is the size a container made from image gets for disk: the
// size where the engine enforces it (asking it once), else 0.
func (s *Service) diskBytes(ctx context.Context, image, disk string) int64 {
	s.disk.mu.Lock()
	defer s.disk.mu.Unlock()
	if s.disk.limits == nil {
		l, err := s.engine.DiskLimits(ctx, image, s.helperLabels())
		if err != nil {
			s.log.Debug("could not tell whether the engine enforces disk sizes", "err", err)
			return 0
		}
		s.disk.limits = &l
		s.log.Info("disk limits", "enforced", l.Enforced, "storageDriver", l.StorageDriver, "why", l.Why)
	}
	if !s.disk.limits.Enforced {
		return 0
	}
	n, _ := ParseSize(disk)
	return n
}

// poolFitsDisk says whether a pooled container (made with the default
// disk) can serve a sandbox asking for disk: a size set at create cannot be
// changed, so where disk is enforced only the default fits.
func (s *Service) poolFitsDisk(disk string) bool {
	l, known := s.DiskLimits()
	if !known || !l.Enforced {
		return true
	}
	want, _ := ParseSize(disk)
	def, _ := ParseSize(DefaultDisk)
	return want == def
}

// watchDisk measures running sandboxes' files where the engine does not
// enforce their disk (diskRound of them a round, in turn), and records when
// one goes past it.
func (s *Service) watchDisk(ctx context.Context) {
	everyTick(ctx, s.disk.every, func() {
		if l, known := s.DiskLimits(); known && !l.Enforced {
			s.checkDisks(ctx)
		}
	})
}

func (s *Service) checkDisks(ctx context.Context) {
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return
	}
	var list []*Sandbox
	for _, sb := range live {
		if limit, _ := ParseSize(sb.Resources.Disk); sb.Status == StatusRunning && limit > 0 {
			list = append(list, sb)
		}
	}
	if len(list) > diskRound {
		s.disk.mu.Lock()
		start := s.disk.next % len(list)
		s.disk.next = start + diskRound
		s.disk.mu.Unlock()
		list = append(list[start:], list[:start]...)[:diskRound]
	}
	for _, sb := range list {
		limit, _ := ParseSize(sb.Resources.Disk)
		if ctx.Err() != nil {
			return
		}
		used, err := s.engine.DiskUsed(ctx, sb.ContainerName())
		if err != nil {
			continue
		}
		s.noteDiskUse(ctx, sb.ID, used, limit)
	}
}

// noteDiskUse records a sandbox's disk use against its limit: the event
// when it goes past it, once until it is back under.
func (s *Service) noteDiskUse(ctx context.Context, id string, used, limit int64) (over bool) {
	over = used > limit
	s.disk.mu.Lock()
	was := s.disk.over[id]
	if over {
		s.disk.over[id] = true
	} else {
		delete(s.disk.over, id)
	}
	why := ""
	if s.disk.limits != nil {
		why = s.disk.limits.Why
	}
	s.disk.mu.Unlock()
	if over && !was {
		s.event(ctx, id, "disk", "warning", "Files past the sandbox's disk", map[string]any{
			"usedBytes": used, "diskBytes": limit, "enforced": false,
			"message": fmt.Sprintf("the sandbox's files take %s, past its disk of %s; rtemu cannot enforce disk on this engine (%s)",
				humanBytes(used), humanBytes(limit), why),
		})
	}
	return over
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
