package emulator_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReset(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, c.create(map[string]any{"name": "keep-" + string(rune('a'+i))})["id"].(string))
	}
	c.must(200, "POST", "/v1/sandboxes/"+ids[0]+"/pause", nil)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "kept files"}).Data()["id"].(string)
	c.must(200, "POST", "/v1/workspaces/"+ws+"/files", map[string]any{"name": "a.txt", "type": "file", "contents": "hello"})
	// A request in flight when the reset comes is ended, not waited for.
	var wg sync.WaitGroup
	wg.Add(1)
	inflight := make(chan int, 1)
	go func() {
		defer wg.Done()
		inflight <- c.do("POST", "/v1/sandboxes/"+ids[1]+"/exec", map[string]any{"command": "sleep 60"}).Status
	}()
	// Wait until the sleep runs in the sandbox.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.TrimSpace(c.exec(ids[1], map[string]any{"command": "ps -o args | grep -c '^sleep 60' || true"})["stdout"].(string)) == "1" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	r := c.must(200, "POST", "/_emulator/reset", nil).Data()
	if r["reset"] != true || r["sandboxesRemoved"] != float64(3) {
		t.Fatalf("reset answer %v", r)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("reset took %v", el)
	}
	wg.Wait()
	if st := <-inflight; st == 200 {
		t.Errorf("the exec in flight finished normally (status %d) across a reset", st)
	}
	for _, id := range ids {
		if !containerGone(t, id) {
			t.Errorf("container of %s left after reset", id)
		}
		c.must(404, "GET", "/v1/sandboxes/"+id, nil)
	}
	if n := len(c.must(200, "GET", "/v1/sandboxes?status=destroyed&status=running", nil).List()); n != 0 {
		t.Fatalf("%d records after reset", n)
	}
	c.must(404, "GET", "/v1/workspaces/"+ws, nil)
	if n := len(c.must(200, "GET", "/v1/workspaces", nil).Data()["workspaces"].([]any)); n != 0 {
		t.Fatalf("%d workspaces after reset", n)
	}
	if ents, err := os.ReadDir(filepath.Join(c.srv.DataDir, "workspaces")); err != nil || len(ents) != 0 {
		t.Fatalf("workspace folders after reset: %v %v", ents, err)
	}
	// rtemu works as new afterwards, names included.
	c.create(map[string]any{"name": "keep-a"})
}

func TestFaults(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	armed := c.must(201, "POST", "/_emulator/faults", `{"operation":"sandbox.create","mode":"error","status":503,"count":2}`).Data()
	if armed["id"] == "" || armed["count"] != float64(2) {
		t.Fatalf("armed %v", armed)
	}
	for i := 0; i < 2; i++ {
		r := c.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
		if r.Status != 503 || r.ErrCode() != "docker_unavailable" || !strings.Contains(string(r.Body), "injected") {
			t.Fatalf("create %d under fault: %d %s", i, r.Status, r.Body)
		}
	}
	c.create(nil) // the third create is back to normal
	if n := len(c.must(200, "GET", "/_emulator/faults", nil).List()); n != 0 {
		t.Fatalf("used-up fault still listed (%d)", n)
	}

	c.must(201, "POST", "/_emulator/faults", map[string]any{"operation": "sandbox.create", "mode": "fail-async", "message": "disk on fire"})
	r := c.must(201, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	sb := c.waitStatus(r.Data()["id"].(string), "failed")
	if !strings.Contains(sb["error"].(string), "disk on fire") {
		t.Fatalf("fail-async error %v", sb["error"])
	}
	if !containerGone(t, sb["id"].(string)) {
		t.Fatal("fail-async left a container")
	}
	c.must(200, "DELETE", "/_emulator/faults", nil)

	c.must(201, "POST", "/_emulator/faults", `{"operation":"*","mode":"latency","ms":400}`)
	c.must(201, "POST", "/_emulator/faults", `{"operation":"sandbox.get","mode":"error","status":404,"code":"not_found","message":"gone fishing"}`)
	list := c.must(200, "GET", "/_emulator/faults", nil).List()
	if len(list) != 2 {
		t.Fatalf("faults %v", list)
	}
	start := time.Now()
	if r := c.do("GET", "/v1/sandboxes", nil); r.Status != 200 || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("latency: %d after %v", r.Status, time.Since(start))
	}
	if r := c.do("GET", "/v1/sandboxes/"+sb["id"].(string), nil); r.Status != 404 || r.JSON["error"].(map[string]any)["message"] != "gone fishing" {
		t.Fatalf("error fault: %d %s", r.Status, r.Body)
	}
	// /health is no operation: the "*" latency fault does not fire for it
	// (its count moves by what listing the faults adds, and no more).
	fired := func() float64 {
		t.Helper()
		for _, f := range c.must(200, "GET", "/_emulator/faults", nil).List() {
			if f["operation"] == "*" {
				return f["fired"].(float64)
			}
		}
		t.Fatal("the latency fault is gone")
		return 0
	}
	before := fired()
	if r := c.do("GET", "/health", nil); r.Status != 200 {
		t.Fatalf("/health under faults: %d %s", r.Status, r.Body)
	}
	after := fired()
	if perList := fired() - after; after-before != perList {
		t.Fatalf("faults reached /health: the latency fault fired %v times around it, %v for a listing alone", after-before, perList)
	}
	c.must(200, "DELETE", "/_emulator/faults", nil)
	if n := len(c.must(200, "GET", "/_emulator/faults", nil).List()); n != 0 {
		t.Fatalf("%d faults after clearing", n)
	}

	for _, bad := range []string{`{"operation":"sandbox.fly","mode":"error"}`, `{"operation":"sandbox.get","mode":"explode"}`,
		`{"operation":"sandbox.get","mode":"error","status":200}`, `{"operation":"*","mode":"latency"}`,
		`{"operation":"sandbox.get","mode":"fail-async"}`, `{"operation":"sandbox.get","mode":"error","count":-1}`} {
		if r := c.do("POST", "/_emulator/faults", bad); r.Status != 400 || r.ErrCode() != "bad_request" {
			t.Errorf("%s: %d %s", bad, r.Status, r.Body)
		}
	}
	if ops := c.must(200, "GET", "/_emulator/operations", nil).JSON["data"].([]any); len(ops) < 9 {
		t.Errorf("operations %v", ops)
	}
}

func TestVersionHeader(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	for _, r := range []response{
		c.do("GET", "/health", nil), c.do("GET", "/v1/sandboxes", nil), c.do("GET", "/v1/nothing", nil),
		c.do("GET", "/v1/sandboxes", nil, "X-API-Key", ""),
	} {
		if r.Header.Get("X-Rtemu-Version") != "test" {
			t.Errorf("status %d: X-Rtemu-Version %q", r.Status, r.Header.Get("X-Rtemu-Version"))
		}
	}
}

// TestExpireIdle: the idle timeout fires on request, so auto-pause is
// tested without sleeping for it.
func TestExpireIdle(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	id := c.create(map[string]any{"idleTimeout": 600})["id"].(string)
	never := c.create(map[string]any{"idleTimeout": 0})["id"].(string)

	// In use: an exec is running (its first output proves it started).
	_, events, cancel := c.streamExec(id, map[string]any{"command": "echo started; sleep 30"})
	if ev := next(t, events, 10*time.Second); ev.Event != "stdout" {
		t.Fatalf("first event %+v", ev)
	}
	if r := c.do("POST", "/_emulator/sandboxes/"+id+"/expire-idle", nil); r.Status != 409 || !strings.Contains(string(r.Body), "in use") {
		t.Fatalf("expire-idle while an exec runs: %d %s", r.Status, r.Body)
	}
	cancel()
	// The disconnected exec ends; then the sandbox is idle.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r := c.do("POST", "/_emulator/sandboxes/"+id+"/expire-idle", nil); r.Status == 200 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sb := c.must(200, "GET", "/v1/sandboxes/"+id, nil).Data()
	if sb["status"] != "paused" {
		t.Fatalf("after expire-idle: %v", sb["status"])
	}
	feed := c.must(200, "GET", "/v1/sandboxes/"+id+"/activity", nil).Data()["events"].([]any)
	if first := feed[0].(map[string]any); first["eventType"] != "idle-paused" {
		t.Fatalf("newest event %v", first)
	}
	for _, tc := range []struct{ id, want string }{{id, "paused"}, {never, "never goes idle"}, {"sandbox-000000000000", "not found"}} {
		r := c.do("POST", "/_emulator/sandboxes/"+tc.id+"/expire-idle", nil)
		if r.Status < 400 || !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("expire-idle %s: %d %s", tc.id, r.Status, r.Body)
		}
	}
}
