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
// The writer is whichever waiter finds no write under way: an event
// recorded while the store is idle is written by its own goroutine, with no
// hand-off to another and back (a few hundred microseconds of an exec's
// answer on 2 cores); events recorded during a write go in the next batch,
// written by one of their waiters.
type eventLog struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	writing bool
	queued  uint64 // events ever queued
	written uint64 // events ever handled by a writer (written or failed)
}

// maxEventBatch bounds one transaction of the feed's writer.
const maxEventBatch = 256

func (l *eventLog) lockedCond() *sync.Cond {
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
	}
	return l.cond
}

// enqueueEvent queues an event and returns its place in the queue (for
// waitEvent, which every caller calls).
func (s *Service) enqueueEvent(ev Event) uint64 {
	l := &s.events
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, ev)
	l.queued++
	return l.queued
}

// waitEvent waits until the event queued n-th is written (or its write
// failed, which is logged), writing the queue itself when no write is
// under way.
func (s *Service) waitEvent(n uint64) {
	l := &s.events
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.written < n {
		if l.writing {
			l.lockedCond().Wait()
			continue
		}
		// Events up to n are queued and no one writes them: this caller
		// does, in order, at most a batch at a time.
		batch := l.queue
		if len(batch) > maxEventBatch {
			batch = batch[:maxEventBatch:maxEventBatch]
			l.queue = l.queue[maxEventBatch:]
		} else {
			l.queue = nil
		}
		l.writing = true
		l.mu.Unlock()
		if err := s.store.AddEvents(context.Background(), batch); err != nil {
			s.log.Warn("could not record activity", "events", len(batch), "sandbox", batch[0].SandboxID, "event", batch[0].Type, "err", err)
		}
		l.mu.Lock()
		l.written += uint64(len(batch))
		l.writing = false
		l.lockedCond().Broadcast()
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
