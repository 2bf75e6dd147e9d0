package sandbox

import (
	"context"
	"sync"
	"time"
)

// Only desktop-ubuntu sandboxes have a desktop, as on the hosted service:
// its web client (noVNC) answers on VNCPort inside the sandbox.
const (
	DesktopTemplate = "desktop-ubuntu"
	VNCPort         = 6901
)

// DesktopURLLifetime sets the expiresAt given with a desktop URL, as the
// hosted API gives one with its signed URLs; rtemu's URL does not expire.
const DesktopURLLifetime = time.Hour

// vncProbeTimeout bounds the check of a desktop's port; a local connect is
// answered in well under a millisecond, refused or not.
const vncProbeTimeout = 500 * time.Millisecond

// HasDesktop says whether the sandbox's template comes with a desktop.
func (s *Sandbox) HasDesktop() bool { return s.Template == DesktopTemplate }

// Desktop returns a sandbox whose desktop can be asked for: a conflict for
// a sandbox of another template.
func (s *Service) Desktop(ctx context.Context, ref string) (*Sandbox, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !sb.HasDesktop() {
		return nil, conflict("sandbox %s has template %s; only %s sandboxes have a desktop", sb.ID, sb.Template, DesktopTemplate)
	}
	return sb, nil
}

// vncProbeEvery is how often a running desktop not yet seen ready is probed
// (watchDesktops); one seen ready is probed again only every
// vncRecheckEvery: a desktop's web client (websockify) serves the browser
// too, and a probe is a connection it has to take and drop.
const (
	vncProbeEvery   = 500 * time.Millisecond
	vncRecheckEvery = 10 * time.Second
)

// desktops is what the desktop watcher last saw: the running desktop
// sandboxes whose web client answered.
type desktops struct {
	mu    sync.Mutex
	ready map[string]time.Time // sandbox id → when its web client last answered
}

// VNCReady reports whether a desktop sandbox's web client answered when
// the watcher last looked. It reads only: showing a sandbox dials nothing.
func (s *Service) VNCReady(sb *Sandbox) bool {
	if !sb.HasDesktop() || sb.Status != StatusRunning {
		return false
	}
	s.desks.mu.Lock()
	defer s.desks.mu.Unlock()
	_, ok := s.desks.ready[sb.ID]
	return ok
}

// watchDesktops probes the web client of every running desktop sandbox.
// It dials through the engine's DialPort (the one route to a sandbox's
// ports) but not through Service.DialPort: looking at a sandbox must
// neither resume it nor count as activity, or a client polling for
// readiness would keep it from ever idling.
func (s *Service) watchDesktops(ctx context.Context) {
	everyTick(ctx, vncProbeEvery, func() {
		live, err := s.store.LiveSandboxes(ctx)
		if err != nil {
			return
		}
		s.desks.mu.Lock()
		was := s.desks.ready
		s.desks.mu.Unlock()
		ready := map[string]time.Time{}
		for _, sb := range live {
			if !sb.HasDesktop() || sb.Status != StatusRunning {
				continue // a paused desktop is not ready; once resumed it is probed afresh
			}
			if at, ok := was[sb.ID]; ok && time.Since(at) < vncRecheckEvery {
				ready[sb.ID] = at
			} else if s.vncAnswers(ctx, sb) {
				ready[sb.ID] = time.Now()
			}
		}
		s.desks.mu.Lock()
		s.desks.ready = ready
		s.desks.mu.Unlock()
	})
}

func (s *Service) vncAnswers(ctx context.Context, sb *Sandbox) bool {
	ctx, cancel := context.WithTimeout(ctx, vncProbeTimeout)
	defer cancel()
	conn, err := s.engine.DialPort(ctx, sb.ContainerName(), VNCPort)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
