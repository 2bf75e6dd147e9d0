package sandbox

import (
	"context"
	"sync"
)

// Change says that a resource changed; watchers (the dashboard's live view)
// read the resource again to see how.
type Change struct {
	Kind string `json:"kind"` // "sandbox", and the kinds other resources add
	ID   string `json:"id"`
	// Status is the sandbox's status after the change, when Kind is sandbox.
	Status Status `json:"status,omitempty"`
}

// changes fans changes out to subscribers. A slow subscriber loses changes
// rather than slowing the service: each has a buffer, and a full buffer
// drops.
type changes struct {
	mu   sync.Mutex
	subs map[chan Change]struct{}
}

// Subscribe returns a channel of changes that is closed when ctx ends.
func (s *Service) Subscribe(ctx context.Context) <-chan Change {
	ch := make(chan Change, 64)
	s.changes.mu.Lock()
	if s.changes.subs == nil {
		s.changes.subs = map[chan Change]struct{}{}
	}
	s.changes.subs[ch] = struct{}{}
	s.changes.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.changes.mu.Lock()
		delete(s.changes.subs, ch)
		s.changes.mu.Unlock()
		close(ch)
	}()
	return ch
}

// Publish tells every subscriber about a change.
func (s *Service) Publish(c Change) {
	s.changes.mu.Lock()
	defer s.changes.mu.Unlock()
	for ch := range s.changes.subs {
		select {
		case ch <- c:
		default:
		}
	}
}
