package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// Engine outages: while the engine (Docker) stops, is down or restarts, its
// failures come in many shapes (a refused connection, a connection cut in
// the middle of an answer, a 500 with a libnetwork message from an engine
// shutting down). Whatever the shape, an engine failure while the engine
// does not answer is reported as the engine's unavailability, and what an
// outage did to sandboxes is said in their words.

// engineRestarted is the error of a sandbox whose container the engine
// stopped when it stopped or restarted.
func (s *Service) engineRestarted() string {
	return s.theEngine() + " restarted; processes were lost"
}

// outageWindow is how long before the engine's event stream broke a
// container's end still counts as the engine's doing (the engine stops its
// containers first, within its shutdown timeout of 15 s, then stops
// answering).
const outageWindow = 30 * time.Second

// outage remembers the engine's last disappearance and the containers that
// ended just before it, until a reconcile has said what became of them.
type outage struct {
	mu     sync.Mutex
	lostAt time.Time            // zero: no outage since the last reconcile
	died   map[string]time.Time // sandbox id → when its container's die event came
}

func (o *outage) lost(at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lostAt.IsZero() {
		o.lostAt = at
	}
}

func (o *outage) sawDie(id string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.died == nil {
		o.died = map[string]time.Time{}
	}
	o.died[id] = at
	for k, t := range o.died { // keep it small: only recent ends matter
		if at.Sub(t) > outageWindow {
			delete(o.died, k)
		}
	}
}

// since returns when the engine was lost (zero if it was not) and whether
// the sandbox's container died within the window before that.
func (o *outage) since(id string) (lostAt time.Time, diedInIt bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lostAt.IsZero() {
		return time.Time{}, false
	}
	t, ok := o.died[id]
	return o.lostAt, ok && !t.Before(o.lostAt.Add(-outageWindow))
}

// over is called once a reconcile after the outage has worked.
func (o *outage) over() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lostAt = time.Time{}
	o.died = nil
}

// engineDown says whether the engine does not answer now: the event stream
// is known broken, or a ping fails at once (refused, cut). A ping that is
// merely slow (a busy machine) does not count: a slow engine is not down,
// and its errors are its own.
func (s *Service) engineDown() bool {
	if !s.engineUp.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	_, err := s.engine.Ping(ctx)
	return err != nil && ctx.Err() == nil
}

// knownEngineError says whether err already means something of its own.
func knownEngineError(err error) bool {
	var se *Error
	return errors.As(err, &se) || errors.Is(err, engine.ErrNotFound) ||
		errors.Is(err, engine.ErrNotRunning) || errors.Is(err, engine.ErrNameInUse) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Explain turns an unexpected failure into the engine's unavailability
// when the engine does not answer now; any other error is returned as it
// is. The front doors call it on errors they have no other word for, so
// that an outage is never an internal error.
func (s *Service) Explain(err error) error {
	if err == nil || knownEngineError(err) && !errors.Is(err, engine.ErrUnavailable) {
		return err
	}
	if errors.Is(err, engine.ErrUnavailable) || s.engineDown() {
		return s.unavailable(err)
	}
	return err
}

// outageFailure words a create's failure when the engine went away under
// it.
func (s *Service) outageFailure(err error) error {
	if errors.Is(err, engine.ErrUnavailable) || !knownEngineError(err) && s.engineDown() {
		return fmt.Errorf("%s stopped or became unreachable while the sandbox was being made: %w", s.theEngine(), err)
	}
	return err
}

// killedByContainerEnd says why a command that died by a signal (exit 137
// or 143) died, when its container is no longer running: the engine
// stopping (it stops its containers, then stops answering, within its
// shutdown timeout), which is the engine's unavailability, or the container
// stopped outside rtemu, a conflict. A command killed in a running
// container (the kernel's OOM killer, a kill inside) is the command's own
// end: nil.
func (s *Service) killedByContainerEnd(ctx context.Context, sb *Sandbox, code int) error {
	if code != 137 && code != 143 {
		return nil
	}
	// The engine may end the command a moment before the container (the
	// agent is told first): a container that still runs a second later is
	// the command's own end.
	for settle := time.Now().Add(time.Second); ; {
		st, err := s.engine.Inspect(ctx, sb.ContainerName())
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			if werr := s.Explain(err); werr != err {
				return werr
			}
		}
		if err != nil || st.Status != engine.Running {
			break
		}
		if time.Now().After(settle) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	for deadline := time.Now().Add(outageWindow / 2); s.caps.StopsContainersWhenDown && time.Now().Before(deadline); {
		if s.engineDown() {
			return s.unavailable(fmt.Errorf("%s stopped while the command ran (exit code %d)", s.theEngine(), code))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return conflict("the container of sandbox %s stopped while the command ran (exit code %d)", sb.ID, code)
}
