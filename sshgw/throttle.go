package sshgw

import (
	"context"
	"net"
	"sync"
	"time"
)

// ThrottlePolicy is how password guessing is slowed, then refused. Failed
// passwords are counted per sandbox (the username, so a name that exists
// and one that does not are treated alike) and per source address. Past
// the free failures, each failure is answered only after a delay that
// doubles with every failure, up to MaxDelay; at the lockout count every
// password attempt on that sandbox or from that source is refused for
// CoolDown without being checked, after the same delay, so a refusal looks
// the same whatever caused it. Failures are forgotten Window after the
// last one, and a login resets its sandbox's and source's counts.
//
// Keys are never slowed or refused by this: a key cannot be guessed, and
// clients offer several keys in turn as a matter of course, so someone
// else's failed passwords cannot lock a key's owner out.
type ThrottlePolicy struct {
	SandboxFree, SandboxLockout int // failures per sandbox: without delay; until refused
	SourceFree, SourceLockout   int // the same per source address
	BaseDelay, MaxDelay         time.Duration
	CoolDown, Window            time.Duration
	// Now and Sleep are the clock (tests move it).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration)
}

// DefaultThrottle: a source on loopback is every local client at once, so
// sources get more room than a single sandbox.
var DefaultThrottle = ThrottlePolicy{
	SandboxFree: 3, SandboxLockout: 10,
	SourceFree: 10, SourceLockout: 30,
	BaseDelay: 250 * time.Millisecond, MaxDelay: 4 * time.Second,
	CoolDown: 5 * time.Minute, Window: 15 * time.Minute,
}

func (p ThrottlePolicy) withDefaults() ThrottlePolicy {
	d := DefaultThrottle
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pickD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&p.SandboxFree, d.SandboxFree)
	pick(&p.SandboxLockout, d.SandboxLockout)
	pick(&p.SourceFree, d.SourceFree)
	pick(&p.SourceLockout, d.SourceLockout)
	pickD(&p.BaseDelay, d.BaseDelay)
	pickD(&p.MaxDelay, d.MaxDelay)
	pickD(&p.CoolDown, d.CoolDown)
	pickD(&p.Window, d.Window)
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = sleepCtx
	}
	return p
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// maxTracked bounds the counters kept (a flood of made-up usernames).
const maxTracked = 10000

type failures struct {
	n           int
	last        time.Time
	lockedUntil time.Time
}

type throttle struct {
	p  ThrottlePolicy
	mu sync.Mutex
	by map[string]*failures // "u:" + username, "s:" + source address
}

func newThrottle(p ThrottlePolicy) *throttle {
	return &throttle{p: p.withDefaults(), by: map[string]*failures{}}
}

func sourceOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// entry returns the counter of key as of now, forgetting stale ones.
func (t *throttle) entry(key string, now time.Time) *failures {
	f := t.by[key]
	if f != nil && now.After(f.lockedUntil) && now.Sub(f.last) > t.p.Window {
		delete(t.by, key)
		f = nil
	}
	if f == nil {
		if len(t.by) >= maxTracked {
			t.prune(now)
		}
		f = &failures{}
		t.by[key] = f
	}
	return f
}

func (t *throttle) prune(now time.Time) {
	for k, f := range t.by {
		if now.After(f.lockedUntil) && now.Sub(f.last) > t.p.Window {
			delete(t.by, k)
		}
	}
	if len(t.by) >= maxTracked { // all fresh: keep the map bounded anyway
		clear(t.by)
	}
}

func (t *throttle) keys(user string, src net.Addr) [2]string {
	return [2]string{"u:" + user, "s:" + sourceOf(src)}
}

// locked says whether password attempts for user from src are refused now
// (a cool-down that has ended starts the counts afresh), and the delay
// their refusal waits for.
func (t *throttle) locked(user string, src net.Addr) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.p.Now()
	locked := false
	for _, k := range t.keys(user, src) {
		f := t.entry(k, now)
		if now.Before(f.lockedUntil) {
			locked = true
		} else if !f.lockedUntil.IsZero() {
			*f = failures{} // cooled down
		}
	}
	if locked {
		return true, t.p.MaxDelay
	}
	return false, 0
}

// failed records a failed password and returns how long to wait before
// answering it.
func (t *throttle) failed(user string, src net.Addr) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.p.Now()
	var wait time.Duration
	for i, k := range t.keys(user, src) {
		free, lockout := t.p.SandboxFree, t.p.SandboxLockout
		if i == 1 {
			free, lockout = t.p.SourceFree, t.p.SourceLockout
		}
		f := t.entry(k, now)
		f.n++
		f.last = now
		if f.n >= lockout {
			f.lockedUntil = now.Add(t.p.CoolDown)
		}
		if over := f.n - free; over > 0 {
			d := t.p.BaseDelay << min(over-1, 20)
			wait = max(wait, min(d, t.p.MaxDelay))
		}
	}
	return wait
}

// succeeded forgets the failures of user and src.
func (t *throttle) succeeded(user string, src net.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keys(user, src) {
		if f := t.by[k]; f != nil && !t.p.Now().Before(f.lockedUntil) {
			delete(t.by, k)
		}
	}
}
