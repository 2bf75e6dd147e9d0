package emulator_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// waitPaused polls until a sandbox is paused and returns when that was seen.
func (c *client) waitPaused(id string, within time.Duration) time.Time {
	c.t.Helper()
	testwait.Check(c.t, within, func() error {
		if c.status(id) == "paused" {
			return nil
		}
		return fmt.Errorf("sandbox %s was not paused (status %s)", id, c.status(id))
	})
	return time.Now()
}

// TestIdleTimeout: a sandbox with no activity for idleTimeout seconds is
// paused, with an idle-paused event; exec calls and open dev-URL
// connections are activity for as long as they last.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(map[string]any{"idleTimeout": 2})["id"].(string)
	seenRunning := time.Now()

	t.Run("idle pauses", func(t *testing.T) {
		paused := c.waitPaused(id, 20*time.Second)
		if idle := paused.Sub(seenRunning); idle < 1900*time.Millisecond {
			t.Errorf("paused %v after running; idleTimeout is 2 s", idle)
		}
		var evs []map[string]any
		testwait.Check(t, 10*time.Second, func() error {
			if evs = c.activity(id); len(evs) > 0 && evs[0]["eventType"] == "idle-paused" {
				return nil
			}
			return fmt.Errorf("no idle-paused event: %v", eventTypes(evs))
		})
		// The service's own measure of the idleness it paused for: not
		// early (no fixed sleep needed to see it still running before).
		attrs := evs[0]["attributes"].(map[string]any)
		if attrs["idleTimeout"] != float64(2) || attrs["idleMs"].(float64) < 2000 {
			t.Errorf("newest event %v", evs[0])
		}
		for _, e := range evs {
			if e["eventType"] == "paused" {
				t.Errorf("an idle pause is recorded as idle-paused only: %v", eventTypes(evs))
			}
		}
	})

	t.Run("a running exec is activity", func(t *testing.T) {
		c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/resume", nil)
		c.waitStatus(id, "running")
		res := c.exec(id, map[string]any{"command": "sleep 4; echo done"})
		ended := time.Now()
		if res["stdout"] != "done\n" {
			t.Fatalf("exec %v", res)
		}
		if st := c.status(id); st != "running" {
			t.Fatalf("status %s right after a 4 s exec", st)
		}
		sb := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data()
		last, err := time.Parse(time.RFC3339, sb["lastActivityAt"].(string))
		if err != nil || time.Since(last) > 5*time.Second {
			t.Errorf("lastActivityAt %v", sb["lastActivityAt"])
		}
		if idle := c.waitPaused(id, 20*time.Second).Sub(ended); idle < 1900*time.Millisecond {
			t.Errorf("paused %v after the exec ended", idle)
		}
	})

	t.Run("an open dev-URL stream is activity and wakes the sandbox", func(t *testing.T) {
		c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/resume", nil)
		c.waitStatus(id, "running")
		c.startServers(id, 4)
		u := c.devURL(id, 4001)["url"].(string)
		c.waitPaused(id, 20*time.Second)

		// The sandbox is paused; the request resumes it, and the event
		// stream, 4 s long, keeps it awake.
		start := time.Now()
		resp, err := http.Get(u + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events := make(chan sseEvent, 4)
		go readEvents(resp.Body, start, events)
		next(t, events, 20*time.Second)
		next(t, events, 20*time.Second)
		if _, open := <-events; open {
			t.Fatal("more events than two")
		}
		ended := time.Now()
		if st := c.status(id); st != "running" {
			t.Fatalf("status %s right after a 4 s stream", st)
		}
		if idle := c.waitPaused(id, 20*time.Second).Sub(ended); idle < 1900*time.Millisecond {
			t.Errorf("paused %v after the stream ended", idle)
		}
	})
}

// TestIdleTimeoutZero: 0 disables the idle timeout.
func TestIdleTimeoutZero(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	id := c.create(map[string]any{"idleTimeout": 0})["id"].(string)
	c.waitStatus(id, "running")
	// A witness with a timeout of 1 s, made after it: once the witness is
	// paused, the idle sweeps have gone over the first for longer.
	witness := c.create(map[string]any{"idleTimeout": 1})["id"].(string)
	c.waitPaused(witness, 20*time.Second)
	if st := c.status(id); st != "running" {
		t.Errorf("status %s with idleTimeout 0", st)
	}
}
