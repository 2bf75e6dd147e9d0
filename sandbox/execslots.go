package sandbox

import (
	"context"
	"sync"
	"time"
)

// execSlots paces the execs of one sandbox. Each command runs on a
// command channel of its own, and the engine keeps a few started per
// container (Capabilities.ExecSlots: Docker keeps 8 idle exec agents); a
// command with none idle to run on costs the engine a round trip to start
// one (a Docker exec: tens of ms, seconds when dozens start at once on a
// small machine). So up to per commands of a sandbox run at once, and one
// more waits up to execSlotWait for one of them to end (a `true` ends in
// about a millisecond) before it goes ahead anyway: a burst of 30 short
// commands is served by the agents already started, while long commands
// beyond the slots are delayed by execSlotWait at most.
type execSlots struct {
	per int // slots per sandbox; 0: commands are not paced
	mu  sync.Mutex
	of  map[string]*slotSet
}

type slotSet struct {
	sem   chan struct{}
	users int
}

const execSlotWait = time.Second

// acquire takes a slot of the sandbox (or gives up waiting for one) and
// returns what gives it back.
func (e *execSlots) acquire(ctx context.Context, id string) (release func()) {
	if e.per <= 0 {
		return func() {}
	}
	e.mu.Lock()
	if e.of == nil {
		e.of = map[string]*slotSet{}
	}
	ss := e.of[id]
	if ss == nil {
		ss = &slotSet{sem: make(chan struct{}, e.per)}
		e.of[id] = ss
	}
	ss.users++
	e.mu.Unlock()
	done := func(held bool) func() {
		return func() {
			if held {
				<-ss.sem
			}
			e.mu.Lock()
			if ss.users--; ss.users == 0 {
				delete(e.of, id)
			}
			e.mu.Unlock()
		}
	}
	select {
	case ss.sem <- struct{}{}:
		return done(true)
	default:
	}
	t := time.NewTimer(execSlotWait)
	defer t.Stop()
	select {
	case ss.sem <- struct{}{}:
		return done(true)
	case <-t.C:
	case <-ctx.Done():
	}
	return done(false)
}
