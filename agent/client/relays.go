package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
)

// ErrRelaysClosed: the relays were closed (the engine is closing).
var ErrRelaysClosed = errors.New("the port relays are closed")

// RelayOptions say how Relays starts and keeps the sandboxes' port relays.
type RelayOptions struct {
	// Open starts the sandbox's agent in its ports mode
	// (agent.EnvServe=agent.ServePortsMode) on a stream of the engine's,
	// and makes the relay on it (agent.NewRelay, whose close closes the
	// stream).
	Open func(ctx context.Context, name string) (*agent.Relay, error)
	// IdleFor: a relay without an open stream that nothing has asked for
	// this long is closed (it holds a few MB of its sandbox's memory).
	IdleFor time.Duration
	// StartTimeout bounds a start, whoever asked for it first: a caller
	// with a shorter deadline stops waiting, the start goes on for the
	// next.
	StartTimeout time.Duration
	// Lasting, if set, says of a start's error that it will not change for
	// the sandbox (it has no agent, or an older one): later Gets give it at
	// once, until Forget.
	Lasting func(error) bool
}

// Relays keeps one port relay (agent.Relay) per sandbox, whatever the
// engine: started on demand, once however many ask at the same time,
// closed when idle, dropped when it breaks.
type Relays struct {
	ctx context.Context // ends with the engine: stops a start
	o   RelayOptions

	mu     sync.Mutex
	byName map[string]*relayOf
	closed bool
}

// relayOf is what Relays knows of one sandbox's relay.
type relayOf struct {
	relay *keptRelay
	ready chan struct{} // while one starts: closed when it is up (or failed)
	err   error         // a lasting error of a start
}

type keptRelay struct {
	m    *agent.Relay
	idle *time.Timer
	last time.Time // when it was last asked for
}

// NewRelays makes the relays of an engine; ctx ends with it.
func NewRelays(ctx context.Context, o RelayOptions) *Relays {
	return &Relays{ctx: ctx, o: o, byName: map[string]*relayOf{}}
}

// Get returns the sandbox's relay, starting it if need be.
func (rs *Relays) Get(ctx context.Context, name string) (*agent.Relay, error) {
	for {
		rs.mu.Lock()
		if rs.closed {
			rs.mu.Unlock()
			return nil, ErrRelaysClosed
		}
		ro := rs.byName[name]
		if ro == nil {
			ro = &relayOf{}
			rs.byName[name] = ro
		}
		switch {
		case ro.relay != nil:
			r := ro.relay
			select {
			case <-r.m.Done():
				ro.relay = nil
				rs.mu.Unlock()
				r.close()
				continue
			default:
			}
			r.last = time.Now()
			rs.mu.Unlock()
			return r.m, nil
		case ro.err != nil:
			rs.mu.Unlock()
			return nil, ro.err
		case ro.ready != nil:
			ready := ro.ready
			rs.mu.Unlock()
			select {
			case <-ready:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ready := make(chan struct{})
		ro.ready = ready
		rs.mu.Unlock()
		var startErr error
		go func() {
			defer close(ready)
			startErr = rs.start(name, ro, ready)
		}()
		select {
		case <-ready:
			if startErr != nil {
				return nil, startErr
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// start starts the relay of ro, whose start ready is.
func (rs *Relays) start(name string, ro *relayOf, ready chan struct{}) error {
	sctx, cancel := context.WithTimeout(rs.ctx, rs.o.StartTimeout)
	defer cancel()
	m, err := rs.o.Open(sctx, name)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.byName[name] != ro || ro.ready != ready {
		// Forgotten meanwhile (removed, or made again).
		if m != nil {
			go m.Close() // not under the lock: a close waits for the pipe's reads to end
		}
		return err
	}
	ro.ready = nil
	switch {
	case err == nil:
		r := &keptRelay{m: m, last: time.Now()}
		r.idle = time.AfterFunc(rs.o.IdleFor, func() { rs.closeIdle(name, r) })
		ro.relay = r
	case rs.o.Lasting != nil && rs.o.Lasting(err):
		ro.err = err
	}
	return err
}

// closeIdle ends a relay nothing has used for IdleFor.
func (rs *Relays) closeIdle(name string, r *keptRelay) {
	rs.mu.Lock()
	ro := rs.byName[name]
	if ro == nil || ro.relay != r {
		rs.mu.Unlock()
		return
	}
	if since := time.Since(r.last); r.m.Streams() > 0 || since < rs.o.IdleFor {
		r.idle.Reset(rs.o.IdleFor - min(since, rs.o.IdleFor/2))
		rs.mu.Unlock()
		return
	}
	ro.relay = nil
	rs.mu.Unlock()
	r.close()
}

// Drop closes the sandbox's relay m, which broke (agent.ErrRelayClosed):
// the next Get starts another.
func (rs *Relays) Drop(name string, m *agent.Relay) {
	rs.mu.Lock()
	if ro := rs.byName[name]; ro != nil && ro.relay != nil && ro.relay.m == m {
		ro.relay.idle.Stop()
		ro.relay = nil
	}
	rs.mu.Unlock()
	m.Close()
}

// Has says whether the sandbox has a relay up.
func (rs *Relays) Has(name string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	ro := rs.byName[name]
	return ro != nil && ro.relay != nil
}

// Forget closes the sandbox's relay and forgets what was learnt of it (it
// was removed); a start under way is closed once it is up.
func (rs *Relays) Forget(name string) {
	rs.mu.Lock()
	ro := rs.byName[name]
	delete(rs.byName, name)
	rs.mu.Unlock()
	if ro != nil && ro.relay != nil {
		ro.relay.close()
	}
}

// Close closes every relay; from then on Get refuses.
func (rs *Relays) Close() {
	rs.mu.Lock()
	rs.closed = true
	all := rs.byName
	rs.byName = map[string]*relayOf{}
	rs.mu.Unlock()
	for _, ro := range all {
		if ro.relay != nil {
			ro.relay.close()
		}
	}
}

func (r *keptRelay) close() {
	r.idle.Stop()
	r.m.Close()
}
