// Package testwait is the one way rtemu's tests wait: poll a condition
// with a deadline (never a fixed sleep), failing with what was last seen.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// Tick is how often a condition is polled.
const Tick = 20 * time.Millisecond

// Until polls cond until it holds; after timeout it fails the test with
// the message (its args are evaluated once, at the call: to report the
// last state seen, use Check).
func Until(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if err := For(timeout, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf(format, args...)
	}); err != nil {
		t.Fatalf("after %v: %v", timeout, err)
	}
}

// Check polls check until it returns nil; after timeout it fails the test
// with the last error check gave.
func Check(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	if err := For(timeout, check); err != nil {
		t.Fatalf("after %v: %v", timeout, err)
	}
}

// For polls check until it returns nil or timeout passes, and returns the
// last error (nil once check passed). For code that cannot fail a test
// itself (a goroutine, a helper that returns errors).
func For(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(Tick)
	}
}
