package sandbox

import (
	"context"
	"sync"
)

// eventLog writes the activity feed with group commits: s.event queues an
// event and waits for it to be written; one writer at a time drains the
// queue into the store in batches (one transaction each), so a burst of
// execs costs one write, not one each, and no answer goes out before its
// event is durable. Readers of the feed (Activity) and Reset flush first, so the feed
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

// enqueueEvent queues an event, starts the writer if none runs, and
// returns the event's place in the queue (for waitEvent).
func (s *Service) enqueueEvent(ev Event) uint64 {
	l := &s.events
	l.mu.Lock()
	l.queue = append(l.queue, ev)
	l.queued++
	n := l.queued
	start := !l.writing
	l.writing = true
	l.mu.Unlock()
	if start {
		go s.writeEvents()
	}
	return n
}

// waitEvent waits until the event queued n-th is written (or its write
// failed, which the writer logs).
func (s *Service) waitEvent(n uint64) {
	l := &s.events
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.written < n {
		l.lockedCond().Wait()
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
	n := l.queued
	l.mu.Unlock()
	s.waitEvent(n)
}
