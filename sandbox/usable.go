package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PausedForIdleness is Sandbox.PausedBy for a pause of the idle timer.
const PausedForIdleness = "idle"

// DefaultUseWait bounds the wait for a sandbox in creating, resuming or
// pausing when the call has no timeout of its own.
const DefaultUseWait = 60 * time.Second

// use says how a front door uses a sandbox, for usable.
type use struct {
	// by names the use in the resumed event of a sandbox it wakes:
	// "exec", "ssh", "port" (a dev URL or an SSH forward), "terminal".
	by string
	// wait bounds the wait for a sandbox on its way to running or paused
	// (the call's own timeout); 0 is DefaultUseWait.
	wait time.Duration
	// wakeAny resumes any paused sandbox (SSH, dev URLs, terminals: using
	// them is asking for the sandbox); without it only a sandbox paused
	// for idleness is woken, and one the user paused is a conflict.
	wakeAny bool
	// noWake answers a paused sandbox as it is (GET …/ssh only reads).
	noWake bool
	// strictable uses get the old conflicts under --strict-lifecycle: a
	// sandbox not running is a 409 at once, and nothing is woken.
	strictable bool
	// got is the sandbox as the caller has just read it (saves a read).
	got *Sandbox
}

// transient says whether a status settles by itself within moments.
func transient(st Status) bool {
	return st == StatusCreating || st == StatusResuming || st == StatusPausing
}

// usable returns a sandbox ready for a use: running, after waiting for it
// to come out of creating, resuming or pausing, and after waking it when it
// is paused and the use may wake it. Every front door's use of a sandbox
// (exec, SSH, dev URLs, terminals) comes through here, so all of them wait
// and wake alike.
func (s *Service) usable(ctx context.Context, ref string, u use) (*Sandbox, error) {
	sb, err := u.got, error(nil)
	if sb == nil {
		if sb, err = s.Get(ctx, ref); err != nil {
			return nil, err
		}
	}
	strict := s.strictLifecycle && u.strictable
	wait := u.wait
	if wait <= 0 {
		wait = DefaultUseWait
	}
	deadline := time.Now().Add(wait)
	for range 10 {
		if transient(sb.Status) {
			if strict {
				return nil, runnable(sb)
			}
			if sb, err = s.awaitSettled(ctx, sb, deadline); err != nil {
				return nil, err
			}
		}
		switch {
		case sb.Status == StatusRunning:
			return sb, nil
		case sb.Status == StatusPaused && u.noWake:
			return sb, nil
		case sb.Status == StatusPaused && !strict && (u.wakeAny || sb.PausedBy == PausedForIdleness):
			if err := s.wake(ctx, sb, u.by); err != nil {
				return nil, err
			}
		default:
			return nil, runnable(sb)
		}
		if sb, err = s.store.GetSandbox(ctx, sb.ID); err != nil {
			return nil, err
		}
	}
	// Paused and resumed by others over and over: give up rather than spin.
	return nil, runnable(sb)
}

// awaitSettled waits until a sandbox is out of creating, resuming and
// pausing, or the deadline passes (a conflict naming the state it is still
// in). It wakes at every change the service publishes, and polls too, so a
// change lost to a full subscriber buffer delays it by a tick at most.
func (s *Service) awaitSettled(ctx context.Context, sb *Sandbox, deadline time.Time) (*Sandbox, error) {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	changes := s.Subscribe(wctx)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	id, waited := sb.ID, time.Now()
	for {
		cur, err := s.store.GetSandbox(ctx, id)
		if err != nil {
			return nil, err
		}
		if !transient(cur.Status) {
			return cur, nil
		}
		select {
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
		case <-tick.C:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, conflict("sandbox %s is still %s after %s", id, cur.Status, time.Since(waited).Round(time.Millisecond))
		}
	}
}

// wake resumes a paused sandbox for a use, with a resumed event saying what
// woke it. A conflict (someone else resumed or paused it meanwhile) is left
// to the caller's next look.
func (s *Service) wake(ctx context.Context, sb *Sandbox, by string) error {
	op := s.resumeOp()
	op.quiet = true
	st, _, err := s.freeze(ctx, sb.ID, op)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	if st == StatusResuming {
		attrs := map[string]any{"wokenBy": by}
		if sb.PausedBy == PausedForIdleness {
			attrs["idlePaused"] = true
		}
		s.event(ctx, sb.ID, "resumed", "info", fmt.Sprintf("Sandbox resumed by %s", by), attrs)
	}
	return nil
}
