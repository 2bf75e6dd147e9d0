package sandbox

import (
	"context"
	"sync"
)

// maxProvisioning bounds the containers the service creates and starts at
// once (cold creates; the warm pool makes at most two per template). The
// engine does not go faster with more at once (on the 2-core machine of
// BENCHMARKS.md, 4 and 8 parallel creates both reach about 4/s), but every
// call waiting inside it waits longer: with 60 creates in flight, a delete
// or the Docker exec that starts an exec agent took seconds. So the rest
// wait here, still creating, and the engine stays responsive to the other
// calls.
const maxProvisioning = 4

// provSlots is a counting semaphore of maxProvisioning, made on first use.
type provSlots struct {
	once sync.Once
	ch   chan struct{}
}

// acquire waits for a slot; release gives it back.
func (p *provSlots) acquire(ctx context.Context) (release func(), err error) {
	p.once.Do(func() { p.ch = make(chan struct{}, maxProvisioning) })
	select {
	case p.ch <- struct{}{}:
		return func() { <-p.ch }, nil
	case <-ctx.Done():
		return func() {}, ctx.Err()
	}
}
