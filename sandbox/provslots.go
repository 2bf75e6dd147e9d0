package sandbox

import (
	"context"
	"sync"
)

// provSlots bounds the containers the service creates and starts at once
// (cold creates; the warm pool makes at most two per template) to the
// engine's Capabilities.ProvisionSlots: an engine goes no faster with more
// at once, but every call waiting inside it waits longer (Docker: see
// engine/docker's provisionSlots). So the rest wait here, still creating,
// and the engine stays responsive to the other calls. A counting
// semaphore of n, made on first use; n 0 bounds nothing.
type provSlots struct {
	n    int
	once sync.Once
	ch   chan struct{}
}

// acquire waits for a slot; release gives it back.
func (p *provSlots) acquire(ctx context.Context) (release func(), err error) {
	if p.n <= 0 {
		return func() {}, ctx.Err()
	}
	p.once.Do(func() { p.ch = make(chan struct{}, p.n) })
	select {
	case p.ch <- struct{}{}:
		return func() { <-p.ch }, nil
	case <-ctx.Done():
		return func() {}, ctx.Err()
	}
}
