package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// idleSweepEvery is how often running sandboxes are checked for idleness:
// an idle sandbox is paused within this much after its idleTimeout is up.
const idleSweepEvery = 250 * time.Millisecond

// sweepIdle pauses running sandboxes that have had no activity for their
// idleTimeout. The idle clock of a sandbox starts when it is seen running
// (created, resumed, or found running when rtemu starts: activity while
// rtemu was down is unknown, so a restart gives every sandbox a full
// timeout) and restarts at every activity; it stands still while a
// long-lived use (exec, SSH session, proxied connection) is open.
func (s *Service) sweepIdle(ctx context.Context) {
	runningSince := map[string]time.Time{}
	everyTick(ctx, idleSweepEvery, func() {
		live, err := s.store.LiveSandboxes(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("idle sweep: cannot list sandboxes", "err", err)
			}
			return
		}
		now := s.now()
		running := make(map[string]bool, len(live))
		for _, sb := range live {
			if sb.Status != StatusRunning {
				continue
			}
			running[sb.ID] = true
			since, seen := runningSince[sb.ID]
			if !seen {
				since = now
				runningSince[sb.ID] = now
			}
			// A pause and resume between two sweeps is seen only here.
			if sb.ResumedAt != nil && sb.ResumedAt.After(since) {
				since = *sb.ResumedAt
			}
			if sb.IdleTimeout <= 0 {
				continue
			}
			if idle, ok := s.Idle(sb.ID, since); ok && idle >= time.Duration(sb.IdleTimeout)*time.Second {
				s.idlePause(ctx, sb, idle)
			}
		}
		for id := range runningSince {
			if !running[id] {
				delete(runningSince, id)
			}
		}
	})
}

// idlePause pauses a sandbox for idleness; its feed says so with one
// idle-paused event instead of paused.
func (s *Service) idlePause(ctx context.Context, sb *Sandbox, idle time.Duration) {
	op := s.pauseOp()
	op.quiet = true
	op.stamp = func(x *Sandbox, t time.Time) { x.PausedAt, x.PausedBy = &t, PausedForIdleness }
	if _, _, err := s.freeze(ctx, sb.ID, op); err != nil {
		// A conflict is a race with a user's own pause, resume or delete.
		if ctx.Err() == nil && !errors.Is(err, ErrConflict) {
			s.log.Warn("idle pause failed", "sandbox", sb.ID, "err", err)
		}
		return
	}
	s.log.Info("sandbox paused for idleness", "sandbox", sb.ID, "idleTimeout", sb.IdleTimeout)
	s.event(ctx, sb.ID, "idle-paused", "info",
		fmt.Sprintf("Sandbox paused after %ds without activity", sb.IdleTimeout),
		map[string]any{"idleTimeout": sb.IdleTimeout, "idleMs": idle.Milliseconds()})
}

// ExpireIdle makes a sandbox's idle timeout fire now, as if it had been idle
// for idleTimeout seconds: tests of auto-pause need no sleeps. A sandbox in
// use (an exec running, an SSH session open) is not idle, and one whose
// timeout is 0 never is: both are conflicts.
func (s *Service) ExpireIdle(ctx context.Context, ref string) (*Sandbox, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case !s.caps.Pause:
		return nil, s.cannotPause(sb, "paused for idleness")
	case sb.Status != StatusRunning:
		return nil, conflict("sandbox %s is %s; only a running sandbox can go idle", sb.ID, sb.Status)
	case sb.IdleTimeout <= 0:
		return nil, conflict("sandbox %s has idleTimeout 0: it never goes idle", sb.ID)
	}
	if _, ok := s.Idle(sb.ID, sb.CreatedAt); !ok {
		return nil, conflict("sandbox %s is in use (an exec, SSH session or proxied connection is open)", sb.ID)
	}
	s.idlePause(ctx, sb, time.Duration(sb.IdleTimeout)*time.Second)
	return s.Get(ctx, sb.ID)
}
