package sandbox

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DevURL is a sandbox port served on a host port of rtemu's own (a
// loopback listener), so its URL resolves with any resolver.
type DevURL struct {
	SandboxID string
	Port      int // inside the sandbox
	HostPort  int
}

// DevURLStore keeps the host port each dev URL was given, so a URL stays
// the same across restarts of rtemu. *store.Store implements it.
type DevURLStore interface {
	// DevURLPort returns ErrNoRecord when the port has no host port yet.
	DevURLPort(ctx context.Context, sandboxID string, port int) (int, error)
	SetDevURLPort(ctx context.Context, u DevURL) error
	// DevURLs lists the dev URLs of every sandbox not destroyed.
	DevURLs(ctx context.Context) ([]DevURL, error)
	DeleteDevURLs(ctx context.Context, sandboxID string) error
}

func validPort(port int) error {
	if port < 1 || port > 65535 {
		return &Error{Kind: KindInvalid, Message: "invalid request",
			Details: []FieldError{{Field: "port", Message: "must be between 1 and 65535"}}}
	}
	return nil
}

// DevURL checks that a sandbox can serve a port through a dev URL (it is
// not failed, in error or destroyed; a paused one is resumed by the first
// request) and returns it with the host port the URL was given before, 0
// when none was.
func (s *Service) DevURL(ctx context.Context, ref string, port int) (*Sandbox, int, error) {
	if err := validPort(port); err != nil {
		return nil, 0, err
	}
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return nil, 0, err
	}
	switch sb.Status {
	case StatusCreating, StatusRunning, StatusPausing, StatusPaused, StatusResuming:
	default:
		return nil, 0, conflict("sandbox %s is %s; dev URLs serve sandboxes that are running or paused", sb.ID, sb.Status)
	}
	hp, err := s.store.DevURLPort(ctx, sb.ID, port)
	if errors.Is(err, ErrNoRecord) {
		return sb, 0, nil
	}
	return sb, hp, err
}

// SaveDevURL records the host port a dev URL is served on.
func (s *Service) SaveDevURL(ctx context.Context, u DevURL) error {
	return s.store.SetDevURLPort(ctx, u)
}

// DevURLs lists the dev URLs of the sandboxes not destroyed, to serve them
// again when rtemu starts.
func (s *Service) DevURLs(ctx context.Context) ([]DevURL, error) {
	return s.store.DevURLs(ctx)
}

// ForgetDevURLs drops a sandbox's dev URLs (it was destroyed).
func (s *Service) ForgetDevURLs(ctx context.Context, sandboxID string) error {
	return s.store.DeleteDevURLs(ctx, sandboxID)
}

// urlTrafficEvery throttles url-traffic events: at most one per sandbox port
// in this time, however busy the dev server is.
const urlTrafficEvery = time.Minute

// urlTraffic remembers when each sandbox port last had a url-traffic event.
type urlTraffic struct {
	mu   sync.Mutex
	last map[DevURL]time.Time
}

// NoteURLRequest records a request through a dev URL in the activity feed,
// throttled to one url-traffic event per port a minute. (The request's
// activity for the idle timer is the caller's BeginActivity.)
func (s *Service) NoteURLRequest(ctx context.Context, sandboxID string, port int, attrs map[string]any) {
	key := DevURL{SandboxID: sandboxID, Port: port}
	now := s.now()
	s.urls.mu.Lock()
	if s.urls.last == nil {
		s.urls.last = map[DevURL]time.Time{}
	}
	due := now.Sub(s.urls.last[key]) >= urlTrafficEvery
	if due {
		// Forget ports quiet for longer than the throttle, so the map
		// does not grow with every port ever used.
		for k, t := range s.urls.last {
			if now.Sub(t) >= urlTrafficEvery {
				delete(s.urls.last, k)
			}
		}
		s.urls.last[key] = now
	}
	s.urls.mu.Unlock()
	if due {
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["port"] = port
		s.event(ctx, sandboxID, "url-traffic", "info", "Dev URL traffic", attrs)
	}
}
