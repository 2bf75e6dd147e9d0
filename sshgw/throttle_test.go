package sshgw_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/sshgw"
)

// clock is a test clock for the throttle, and the delays it asked for.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	delays []time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Sleep records the delay and really waits it (the delays are short here),
// so a test can see an answer come late.
func (c *clock) Sleep(ctx context.Context, d time.Duration) {
	c.mu.Lock()
	c.delays = append(c.delays, d)
	c.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (c *clock) takeDelays() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.delays
	c.delays = nil
	return d
}

// gatewayWith serves a second gateway on the harness's service, with its own
// throttle policy, and returns its address.
func (h *harness) gatewayWith(p sshgw.ThrottlePolicy) string {
	h.t.Helper()
	g, err := sshgw.New(sshgw.Config{Service: h.srv.Service(), HostKeyPath: filepath.Join(h.t.TempDir(), "key"), Throttle: p})
	if err != nil {
		h.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	h.t.Cleanup(func() { g.Close() })
	return ln.Addr().String()
}

func dialAt(addr, user string, auth gossh.AuthMethod) (time.Duration, error) {
	start := time.Now()
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User: user, Auth: []gossh.AuthMethod{auth}, Timeout: 20 * time.Second,
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // a gateway the test just made
	})
	if err == nil {
		c.Close()
	}
	return time.Since(start), err
}

// TestPasswordGuessingThrottled: failed passwords on a sandbox are answered
// later and later, then refused for a cool-down (the right password too,
// refused exactly as a wrong one), while the sandbox's key logs in at once;
// after the cool-down the right password works. The same per source
// address, across sandboxes.
func TestPasswordGuessingThrottled(t *testing.T) {
	t.Parallel()
	h := newFakeHarness(t)
	key := newKey(t, "ed25519")
	box := h.sandbox(map[string]any{"sshKeys": []string{key.authorized}, "rootPassword": "right"})
	others := []string{h.sandbox(map[string]any{"rootPassword": "right"}), h.sandbox(map[string]any{"rootPassword": "right"})}
	const base = 200 * time.Millisecond

	t.Run("per sandbox", func(t *testing.T) {
		clk := &clock{now: time.Unix(1e9, 0)}
		addr := h.gatewayWith(sshgw.ThrottlePolicy{SandboxFree: 2, SandboxLockout: 4, SourceFree: 100, SourceLockout: 100,
			BaseDelay: base, MaxDelay: 2 * base, CoolDown: time.Minute, Window: time.Hour, Now: clk.Now, Sleep: clk.Sleep})
		var wrongErr string
		var took []time.Duration
		for i := 0; i < 4; i++ {
			d, err := dialAt(addr, box, gossh.Password("wrong"))
			if err == nil {
				t.Fatal("a wrong password logged in")
			}
			wrongErr = err.Error()
			took = append(took, d)
		}
		want := []time.Duration{0, 0, base, 2 * base}
		if got := clk.takeDelays(); !equalDurations(got, want) {
			t.Fatalf("delays %v, want %v", got, want)
		}
		if took[3] < 2*base {
			t.Errorf("the fourth failure was answered after %v, before its delay of %v", took[3], 2*base)
		}
		// Locked: the right password is refused, looking like a wrong one.
		if _, err := dialAt(addr, box, gossh.Password("right")); err == nil || err.Error() != wrongErr {
			t.Fatalf("right password while locked: %v (a wrong one: %s)", err, wrongErr)
		}
		if got := clk.takeDelays(); len(got) != 1 || got[0] != 2*base {
			t.Errorf("locked refusal delays %v", got)
		}
		// Keys are not slowed by the failed passwords.
		if d, err := dialAt(addr, box, gossh.PublicKeys(key.signer)); err != nil || d > 2*time.Second {
			t.Fatalf("key login while passwords are locked: %v after %v", err, d)
		}
		if got := clk.takeDelays(); len(got) != 0 {
			t.Errorf("a key login waited %v", got)
		}
		// Other sandboxes' passwords work meanwhile.
		if _, err := dialAt(addr, others[0], gossh.Password("right")); err != nil {
			t.Fatalf("another sandbox's password: %v", err)
		}
		clk.advance(time.Minute + time.Second)
		if _, err := dialAt(addr, box, gossh.Password("right")); err != nil {
			t.Fatalf("right password after the cool-down: %v", err)
		}
	})

	t.Run("per source", func(t *testing.T) {
		clk := &clock{now: time.Unix(1e9, 0)}
		addr := h.gatewayWith(sshgw.ThrottlePolicy{SandboxFree: 100, SandboxLockout: 100, SourceFree: 1, SourceLockout: 3,
			BaseDelay: base, MaxDelay: base, CoolDown: time.Minute, Window: time.Hour, Now: clk.Now, Sleep: clk.Sleep})
		for _, user := range []string{box, others[0], "no-such-box"} {
			if _, err := dialAt(addr, user, gossh.Password("wrong")); err == nil {
				t.Fatal("a wrong password logged in")
			}
		}
		// A sandbox this source never failed on is locked for it too.
		if _, err := dialAt(addr, others[1], gossh.Password("right")); err == nil {
			t.Fatal("right password from a locked source logged in")
		}
		if _, err := dialAt(addr, box, gossh.PublicKeys(key.signer)); err != nil {
			t.Fatalf("key from a locked source: %v", err)
		}
		clk.advance(2 * time.Minute)
		if _, err := dialAt(addr, others[1], gossh.Password("right")); err != nil {
			t.Fatalf("right password after the cool-down: %v", err)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
