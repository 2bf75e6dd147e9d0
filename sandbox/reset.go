package sandbox

import (
	"context"
	"time"
)

// ResetHook clears one resource's state outside the store (e.g. workspace
// folders) during Reset.
type ResetHook func(ctx context.Context) error

// AddResetHook registers state that Reset must clear besides the store's
// records, which it clears on its own for every table.
func (s *Service) AddResetHook(h ResetHook) {
	s.resetMu.Lock()
	defer s.resetMu.Unlock()
	s.resetHooks = append(s.resetHooks, h)
}

// Reset brings rtemu back to empty: every sandbox's container is removed,
// every record of every resource is deleted (the store clears all its
// tables, so a new resource cannot escape), every registered hook runs, and
// the armed faults are cleared. The caller keeps other requests out while it
// runs.
func (s *Service) Reset(ctx context.Context) (removed int, err error) {
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return 0, err
	}
	// The pool's containers go with every other; it fills again after.
	s.suspendPool()
	defer s.resumePool()
	if err := s.DestroyAll(ctx); err != nil {
		return 0, err
	}
	s.flushEvents() // so no event of a removed sandbox is written after the reset
	if err := s.store.Reset(ctx); err != nil {
		return 0, err
	}
	s.resetMu.Lock()
	hooks := append([]ResetHook(nil), s.resetHooks...)
	s.resetMu.Unlock()
	for _, h := range hooks {
		if err := h(ctx); err != nil {
			return 0, err
		}
	}
	s.ClearFaults()
	s.terms.clear()
	s.act.mu.Lock()
	s.act.open, s.act.last, s.act.written = map[string]int{}, map[string]time.Time{}, map[string]time.Time{}
	s.act.mu.Unlock()
	s.Publish(Change{Kind: "reset"})
	return len(live), nil
}
