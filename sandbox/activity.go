package sandbox

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// activity tracks what keeps sandboxes awake: the last time each was used,
// and how many long-lived uses (a running exec, an SSH session, an open
// WebSocket) are open now. The front doors report through Touch and
// BeginActivity; the idle timer reads it.
type activity struct {
	mu      sync.Mutex
	open    map[string]int
	last    map[string]time.Time
	written map[string]time.Time // last time lastActivityAt was persisted
}

// activityWriteEvery throttles the writes of lastActivityAt: a busy sandbox
// is written at most this often.
const activityWriteEvery = time.Second

// Touch records activity on a sandbox now.
func (s *Service) Touch(ctx context.Context, id string) {
	now := s.now()
	s.act.mu.Lock()
	s.act.last[id] = now
	persist := now.Sub(s.act.written[id]) >= activityWriteEvery
	if persist {
		s.act.written[id] = now
	}
	s.act.mu.Unlock()
	if persist {
		_, _ = s.update(context.WithoutCancel(ctx), id, func(x *Sandbox) error {
			x.LastActivityAt = &now
			return nil
		})
	}
}

// BeginActivity marks a long-lived use of a sandbox as open; the sandbox
// counts as active until the returned end is called.
func (s *Service) BeginActivity(ctx context.Context, id string) (end func()) {
	s.Touch(ctx, id)
	s.act.mu.Lock()
	s.act.open[id]++
	s.act.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.act.mu.Lock()
			if s.act.open[id]--; s.act.open[id] <= 0 {
				delete(s.act.open, id)
			}
			s.act.mu.Unlock()
			s.Touch(context.WithoutCancel(ctx), id)
		})
	}
}

// Idle reports how long a sandbox has had no activity, and false when a
// long-lived use is open. A sandbox never touched counts from since.
func (s *Service) Idle(id string, since time.Time) (time.Duration, bool) {
	s.act.mu.Lock()
	defer s.act.mu.Unlock()
	if s.act.open[id] > 0 {
		return 0, false
	}
	last, ok := s.act.last[id]
	if !ok || last.Before(since) {
		last = since
	}
	return s.now().Sub(last), true
}

// RecordEvent appends an entry to a sandbox's activity feed.
func (s *Service) RecordEvent(ctx context.Context, sandboxID, typ, severity, title string, attrs map[string]any) {
	s.event(ctx, sandboxID, typ, severity, title, attrs)
}

// EnsureRunning returns a sandbox that is running, waiting for one that is
// creating, resuming or pausing and resuming one that is paused (an SSH
// connection wakes a sandbox, as on the hosted service). Other states are a
// conflict.
func (s *Service) EnsureRunning(ctx context.Context, ref string) (*Sandbox, error) {
	return s.usable(ctx, ref, use{by: "ssh", wakeAny: true})
}

// ReadyForPorts is EnsureRunning for traffic to a sandbox's ports (dev URLs,
// whose proxy may then reuse a connection it has instead of DialPort).
func (s *Service) ReadyForPorts(ctx context.Context, ref string) (*Sandbox, error) {
	return s.usable(ctx, ref, use{by: "port", wakeAny: true})
}

// DialPort opens a TCP connection to a port inside a sandbox, resuming the
// sandbox when it is paused. SSH port forwarding and dev URLs both come
// through here.
func (s *Service) DialPort(ctx context.Context, ref string, port int) (net.Conn, *Sandbox, error) {
	if port < 1 || port > 65535 {
		return nil, nil, &Error{Kind: KindInvalid, Message: "invalid request",
			Details: []FieldError{{Field: "port", Message: "must be between 1 and 65535"}}}
	}
	sb, err := s.usable(ctx, ref, use{by: "port", wakeAny: true})
	if err != nil {
		return nil, nil, err
	}
	conn, err := s.engine.DialPort(ctx, sb.ContainerName(), port)
	if err != nil {
		if errors.Is(err, engine.ErrNotRunning) {
			return nil, sb, runnable(sb)
		}
		return nil, sb, s.engineErr(err)
	}
	s.Touch(ctx, sb.ID)
	return conn, sb, nil
}
