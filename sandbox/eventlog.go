package sandbox

import (
	"context"
	"sync"
)

// eventLog writes the activity feed off the request path: s.event queues
// an event and returns; one writer at a time drains the queue into the
// store in batches (one transaction each), so an exec's answer does not
// wait for its feed entry, and a burst of execs costs one write, not one
// each. Readers of the feed (Activity) and Reset flush first, so the feed
// shows every event recorded before the read began.
//
// The writer is a goroutine that exists only while events are queued: none
// is left over when the service is idle or closed.
type eventLog struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	writing bool
	queued  uint64 // events ever queued
	written uint64 // events ever handled by the writer (written or failed)
}

// maxEventBatch bounds one transaction of the feed's writer.
const maxEventBatch = 256

func (l *eventLog) lockedCond() *sync.Cond {
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
	}
	return l.cond
}

// enqueue queues an event and starts the writer if none runs.
func (s *Service) enqueueEvent(ev Event) {
	l := &s.events
	l.mu.Lock()
	l.queue = append(l.queue, ev)
	l.queued++
	start := !l.writing
	l.writing = true
	l.mu.Unlock()
	if start {
		go s.writeEvents()
	}
}

func (s *Service) writeEvents() {
	l := &s.events
	for {
		l.mu.Lock()
		batch := l.queue
		if len(batch) > maxEventBatch {
			batch = batch[:maxEventBatch:maxEventBatch]
			l.queue = l.queue[maxEventBatch:]
		} else {
			l.queue = nil
		}
		if len(batch) == 0 {
			l.writing = false
			l.lockedCond().Broadcast()
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		if err := s.store.AddEvents(context.Background(), batch); err != nil {
			s.log.Warn("could not record activity", "events", len(batch), "sandbox", batch[0].SandboxID, "event", batch[0].Type, "err", err)
		}
		l.mu.Lock()
		l.written += uint64(len(batch))
		l.lockedCond().Broadcast()
		l.mu.Unlock()
	}
}

// flushEvents waits until every event queued before the call is written.
func (s *Service) flushEvents() {
	l := &s.events
	l.mu.Lock()
	defer l.mu.Unlock()
	target := l.queued
	for l.written < target {
		l.lockedCond().Wait()
	}
}
