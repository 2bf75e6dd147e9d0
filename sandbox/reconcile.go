package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// reconcile makes the records and the engine agree, after a start or a lost
// event stream, when anything may have happened in between:
//   - a sandbox caught in creating is finished (or fails);
//   - a sandbox caught in destroying is destroyed;
//   - a sandbox caught in pausing or resuming takes the container's state;
//   - a sandbox whose container vanished or stopped is error;
//   - a sandbox in error whose container runs (or is paused) takes the
//     container's state again: only the container's own end is an error;
//   - a container of this instance with no live record is removed.
func (s *Service) reconcile(ctx context.Context) (err error) {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	info, err := s.engine.Ping(ctx)
	if err != nil {
		s.engineUp.Store(false)
		return s.engineErr(err)
	}
	s.hostCPUs.Store(int64(info.CPUs))
	defer func() { s.engineUp.Store(err == nil) }()
	containers, err := s.engine.List(ctx, map[string]string{LabelInstance: s.instance})
	if err != nil {
		return s.engineErr(err)
	}
	byName := make(map[string]engine.Container, len(containers))
	for _, c := range containers {
		byName[c.Name] = c
	}
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return err
	}
	for _, sb := range live {
		c, has := byName[sb.ContainerName()]
		delete(byName, sb.ContainerName())
		switch sb.Status {
		case StatusCreating:
			if s.isProvisioning(sb.ID) {
				continue // this rtemu is making it now
			}
			// One of a state archive saved paused (a pause time while
			// creating) is made again, so provision pauses it.
			if has && c.Status == engine.Running && sb.PausedAt == nil {
				if _, err := s.transition(ctx, sb.ID, StatusRunning, nil); err == nil {
					s.event(ctx, sb.ID, "running", "info", "Sandbox running", nil)
				}
				continue
			}
			if has {
				if err := s.engine.Remove(ctx, c.Name); err != nil {
					return s.engineErr(err)
				}
			}
			s.log.Info("finishing a sandbox caught in creating", "sandbox", sb.ID)
			s.startProvision(sb)
		case StatusDestroying:
			if _, err := s.destroy(ctx, sb); err != nil {
				return err
			}
		case StatusFailed:
			if has {
				if err := s.engine.Remove(ctx, c.Name); err != nil {
					return s.engineErr(err)
				}
			}
		case StatusRunning, StatusPausing, StatusPaused, StatusResuming:
			if !has {
				s.markError(ctx, sb.ID, "the sandbox's container is gone (removed outside rtemu)")
				continue
			}
			if lost, _ := s.outage.since(sb.ID); s.caps.StopsContainersWhenDown && !lost.IsZero() && c.Status != engine.Running && c.Status != engine.Paused {
				// Found stopped after the engine went away: the engine
				// stopped it (a restart of the engine ends every process).
				s.markError(ctx, sb.ID, s.engineRestarted())
				continue
			}
			s.settle(ctx, sb, c.Status, 0)
		case StatusError:
			if has && (c.Status == engine.Running || c.Status == engine.Paused) {
				s.heal(ctx, sb, c.Status)
			} else if _, died := s.outage.since(sb.ID); s.caps.StopsContainersWhenDown && died && sb.Error != s.engineRestarted() {
				// Its die event came as the engine shut down.
				s.reword(ctx, sb, s.engineRestarted())
			}
		}
	}
	for _, c := range byName {
		if c.Labels[LabelPool] != "" && s.pooledInUse(ctx, c) {
			continue
		}
		if c.Labels[LabelProcess] == s.process {
			continue // a helper of this process's, in use now
		}
		s.log.Info("removing a container with no sandbox record", "container", c.Name)
		if err := s.engine.Remove(ctx, c.Name); err != nil {
			return s.engineErr(err)
		}
	}
	s.outage.over()
	return nil
}

// Reconcile runs a reconcile now, as a lost event stream would (tests of
// what reconcile leaves alone).
func (s *Service) Reconcile(ctx context.Context) error { return s.reconcile(ctx) }

// settle records what the engine says a live sandbox's container is doing.
func (s *Service) settle(ctx context.Context, sb *Sandbox, state engine.Status, exitCode int) {
	var to Status
	switch state {
	case engine.Running:
		to = StatusRunning
	case engine.Paused:
		to = StatusPaused
	default:
		s.markError(ctx, sb.ID, fmt.Sprintf("the sandbox's container stopped outside rtemu (state %s, exit code %d)", state, exitCode))
		return
	}
	if sb.Status == to {
		return
	}
	now := s.now()
	// Only from the status it was seen in: a pause or resume of rtemu's own
	// that began meanwhile is left to finish.
	if _, err := s.transitionIf(ctx, sb.ID, to, func(x *Sandbox) error {
		if x.Status != sb.Status {
			return conflict("sandbox %s is %s now", x.ID, x.Status)
		}
		return nil
	}, func(x *Sandbox) {
		if to == StatusPaused {
			// Someone paused it on purpose: exec does not wake it.
			x.PausedAt, x.PausedBy = &now, ""
		} else {
			x.ResumedAt, x.PausedBy = &now, ""
		}
	}); err == nil {
		s.log.Info("sandbox state taken from the engine", "sandbox", sb.ID, "status", to)
	}
}

// heal brings a sandbox wrongly in error back to what its container does
// (running or paused): say, one an older rtemu marked error on an
// out-of-memory kill inside it.
func (s *Service) heal(ctx context.Context, sb *Sandbox, state engine.Status) {
	to := StatusRunning
	if state == engine.Paused {
		to = StatusPaused
	}
	was := sb.Error
	now := s.now()
	if _, err := s.transition(ctx, sb.ID, to, func(x *Sandbox) {
		x.Error = ""
		if to == StatusPaused {
			x.PausedAt = &now
		} else {
			x.ResumedAt = &now
		}
	}); err != nil {
		return
	}
	s.log.Info("sandbox in error whose container runs: healed", "sandbox", sb.ID, "status", to, "was", was)
	s.event(ctx, sb.ID, "recovered", "info", "Sandbox "+string(to)+" again: its container never stopped",
		map[string]any{"error": was, "status": string(to)})
}

// reword changes the error of a sandbox in error (say, once it is known
// that the engine's restart ended its container), with an error event.
func (s *Service) reword(ctx context.Context, sb *Sandbox, why string) {
	if _, err := s.update(ctx, sb.ID, func(x *Sandbox) error {
		if x.Status != StatusError {
			return conflict("sandbox %s is %s", x.ID, x.Status)
		}
		x.Error, x.UpdatedAt = why, s.now()
		return nil
	}); err == nil {
		s.log.Warn("sandbox in error", "sandbox", sb.ID, "reason", why)
		s.event(ctx, sb.ID, "error", "error", "Sandbox error", map[string]any{"error": why})
	}
}

// watch follows the engine's events for this instance's containers, so that
// a container killed, paused or removed behind rtemu's back shows in its
// sandbox within moments. When the stream breaks it reconnects and
// reconciles, since events may have been missed.
func (s *Service) watch(ctx context.Context, reconciled bool) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		connected := time.Now()
		evs, errs := s.engine.Watch(ctx, map[string]string{LabelInstance: s.instance})
		if !reconciled {
			// Subscribed first, so nothing falls between the two.
			if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
				s.log.Debug("reconcile failed", "err", err)
			}
		}
		reconciled = false
	stream:
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					break stream
				}
				s.onEvent(ctx, ev)
			case err := <-errs:
				s.engineUp.Store(false)
				s.outage.lost(s.now())
				if ctx.Err() == nil {
					s.log.Warn("engine event stream ended; reconnecting", "err", err)
				}
				break stream
			}
		}
		if time.Since(connected) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Service) onEvent(ctx context.Context, ev engine.Event) {
	id := ev.Labels[LabelSandbox]
	if id == "" {
		return
	}
	sb, err := s.store.GetSandbox(ctx, id)
	if err != nil {
		if ev.Kind == engine.EventDied || ev.Kind == engine.EventRemoved {
			s.pool.forget(ev.Name) // a pool container killed behind rtemu's back
		}
		return
	}
	// Only settled states are compared with the engine: in every other state
	// rtemu itself is acting on the container and expects its events.
	if sb.Status != StatusRunning && sb.Status != StatusPaused {
		return
	}
	switch ev.Kind {
	case engine.EventOOM:
		// The kernel killed a process of the sandbox for want of memory
		// (cgroup v1 and v2 both report it so). The container goes on
		// unless the victim was its PID 1, which shows as a die event of
		// its own: running out of memory is the sandbox's business.
		s.event(ctx, sb.ID, "oom", "warning", "Out of memory: the kernel killed a process in the sandbox",
			map[string]any{"memory": sb.Resources.Memory})
	case engine.EventDied:
		if s.staleEvent(ctx, sb, true) {
			return
		}
		s.outage.sawDie(sb.ID, s.now())
		s.markError(ctx, sb.ID, fmt.Sprintf("the sandbox's container stopped outside rtemu (exit code %d)", ev.ExitCode))
	case engine.EventRemoved:
		if s.staleEvent(ctx, sb, false) {
			return
		}
		s.markError(ctx, sb.ID, "the sandbox's container was removed outside rtemu")
	case engine.EventPaused, engine.EventUnpaused:
		// The event may be stale: a pause event can come after rtemu's own
		// pause and resume are both done (the engine's stream lags its
		// calls). What the container does now is the answer.
		st, err := s.engine.Inspect(ctx, sb.ContainerName())
		if err != nil || (st.Status != engine.Running && st.Status != engine.Paused) {
			return // its die or remove event says the rest
		}
		s.settle(ctx, sb, st.Status, 0)
	}
}

// destroyAllSlots is how many containers DestroyAll removes at once.
const destroyAllSlots = 8

// DestroyAll removes every container of this instance and marks every live
// sandbox destroyed (used by --ephemeral at exit).
func (s *Service) DestroyAll(ctx context.Context) error {
	// Its destroyed events are written before it returns: the store is
	// closed next at an exit.
	defer s.flushEvents()
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return err
	}
	var (
		errs []error
		mu   sync.Mutex
		wg   sync.WaitGroup
		// The engine removes several containers at once faster than one
		// after another (a reset of ten sandboxes waited on each in turn).
		slots = make(chan struct{}, destroyAllSlots)
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, sb := range live {
		if sb.Status != StatusDestroying {
			if _, err := s.transition(ctx, sb.ID, StatusDestroying, nil); err != nil {
				fail(err)
				continue
			}
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if _, err := s.destroy(ctx, sb); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	// Containers of this instance with no live record (say, one being
	// provisioned as rtemu stops).
	cs, err := s.engine.List(ctx, map[string]string{LabelInstance: s.instance})
	if err != nil {
		fail(s.engineErr(err))
		return errors.Join(errs...)
	}
	for _, c := range cs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := s.engine.Remove(ctx, c.Name); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pooledInUse says whether a pool container with no live record seen by
// reconcile is still wanted: the pool holds it, or Create has just handed it
// over (the record is written before the pool lets go of it, so checking
// the record after the pool leaves no gap).
func (s *Service) pooledInUse(ctx context.Context, c engine.Container) bool {
	if s.pool.owns(c.Name) {
		return true
	}
	sb, err := s.store.GetSandbox(ctx, c.Labels[LabelSandbox])
	return err == nil && sb.Status != StatusDestroyed
}

// staleEvent says whether a die (died) or remove event is of a container
// the sandbox's name had before the one it has now: a reset to a seed
// removes the sandboxes' containers and makes them again under the same
// names, and the engine's stream may bring the old ones' events after the
// new ones run. What the engine says of the name now is the answer; when
// it cannot say, the event counts.
func (s *Service) staleEvent(ctx context.Context, sb *Sandbox, died bool) bool {
	st, err := s.engine.Inspect(ctx, sb.ContainerName())
	if err != nil {
		return false
	}
	return !died || st.Status == engine.Running || st.Status == engine.Paused
}
