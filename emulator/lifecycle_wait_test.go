package emulator_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// TestUseDuringStartup: a client that creates a sandbox and uses it at once,
// as the SDK and ComputeSDK-style providers do, gets answers, not 409s:
// exec (plain and streaming) and GET …/ssh wait until the sandbox runs.
func TestUseDuringStartup(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
			if r.Status != http.StatusCreated {
				errs <- fmt.Sprintf("create %d: %d %s", i, r.Status, r.Body)
				return
			}
			id := r.Data()["id"].(string)
			// An exec waits for a creating sandbox up to its own timeout
			// (30 s by default). Twenty creates at once on a loaded machine
			// may take longer than that, which is no fault: the wait is
			// what is checked here, not the speed, so the timeout only
			// stops a create that never ends.
			body := map[string]any{"command": fmt.Sprintf("echo ok %d", i), "timeout": 600_000}
			want := fmt.Sprintf("ok %d\n", i)
			if i%4 == 3 {
				// Streaming: the stream opens once the sandbox runs.
				resp, events, _ := c.streamExec(id, body)
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Sprintf("stream %d: status %d", i, resp.StatusCode)
					return
				}
				var out strings.Builder
				for ev := range events {
					if ev.Event == "stdout" {
						out.WriteString(ev.Data)
					}
					if ev.Event == "exit" || ev.Event == "error" {
						if ev.Event == "error" || !strings.Contains(ev.Data, `"exitCode":0`) {
							errs <- fmt.Sprintf("stream %d: %s %s", i, ev.Event, ev.Data)
						}
						break
					}
				}
				if !strings.Contains(out.String(), strings.TrimSpace(want)) {
					errs <- fmt.Sprintf("stream %d: stdout %q", i, out.String())
				}
				return
			}
			if i%4 == 2 {
				if r := c.do("GET", "/v1/sandboxes/"+id+"/ssh", nil); r.Status != http.StatusOK || r.Data()["user"] != id {
					errs <- fmt.Sprintf("ssh info %d: %d %s", i, r.Status, r.Body)
				}
			}
			r = c.do("POST", "/v1/sandboxes/"+id+"/exec", body)
			if r.Status != http.StatusOK || r.Data()["stdout"] != want {
				errs <- fmt.Sprintf("exec %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	t.Run("an SSH session on a creating sandbox", func(t *testing.T) {
		id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "rootPassword": "pw"}).Data()["id"].(string)
		conn, err := gossh.Dial("tcp", c.srv.SSHAddr, &gossh.ClientConfig{User: id, Auth: []gossh.AuthMethod{gossh.Password("pw")},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sess, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		if out, err := sess.Output("echo over-ssh"); err != nil || string(out) != "over-ssh\n" {
			t.Fatalf("ssh command on a creating sandbox: %q %v", out, err)
		}
	})

	t.Run("a dev URL on a creating sandbox", func(t *testing.T) {
		id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}).Data()["id"].(string)
		u := c.devURL(id, 3999)["url"].(string)
		// Nothing listens on 3999: a request that waited for the sandbox
		// reaches it and finds no server (502), not a 409 for its state.
		if code, _, body := get(t, u+"/", ""); code != http.StatusBadGateway {
			t.Fatalf("dev URL of a creating sandbox: %d %s", code, body)
		}
	})

	t.Run("a sandbox that fails is the usual error, naming why", func(t *testing.T) {
		c.must(http.StatusCreated, "POST", "/_emulator/faults", map[string]any{
			"operation": "sandbox.create", "mode": "fail-async", "message": "disk on fire", "count": 1})
		id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}).Data()["id"].(string)
		r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"})
		if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "disk on fire") {
			t.Fatalf("exec on a sandbox that failed: %d %s", r.Status, r.Body)
		}
	})
}

// TestExecWakesIdlePaused: a sandbox paused for idleness is woken by exec
// (plain and streaming), with a resumed event saying so; one the user
// paused stays paused and the exec is a 409.
func TestExecWakesIdlePaused(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(map[string]any{"idleTimeout": 600})["id"].(string)
	idlePause := func() {
		t.Helper()
		c.must(http.StatusOK, "POST", "/_emulator/sandboxes/"+id+"/expire-idle", nil)
		if st := c.status(id); st != "paused" {
			t.Fatalf("status %s after expire-idle", st)
		}
	}

	idlePause()
	if out := c.sh(id, "echo awake"); out != "awake\n" {
		t.Fatalf("exec after an idle pause: %q", out)
	}
	if st := c.status(id); st != "running" {
		t.Fatalf("status %s after the exec", st)
	}
	evs := c.activity(id)
	var woke map[string]any
	for _, e := range evs {
		if e["eventType"] == "resumed" {
			woke = e
			break
		}
	}
	if woke == nil {
		t.Fatalf("no resumed event: %v", eventTypes(evs))
	}
	if a := woke["attributes"].(map[string]any); a["wokenBy"] != "exec" || a["idlePaused"] != true {
		t.Errorf("resumed event %v", woke)
	}

	idlePause()
	resp, events, _ := c.streamExec(id, map[string]any{"command": "echo streamed"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("streaming exec after an idle pause: %d", resp.StatusCode)
	}
	if ev := next(t, events, 30*time.Second); ev.Event != "stdout" || !strings.Contains(ev.Data, "streamed") {
		t.Fatalf("first event %+v", ev)
	}

	c.waitStatus(id, "running")
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	c.waitStatus(id, "paused")
	if r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"}); r.Status != http.StatusConflict ||
		!strings.Contains(string(r.Body), "resume") {
		t.Fatalf("exec on a user-paused sandbox: %d %s", r.Status, r.Body)
	}
	if st := c.status(id); st != "paused" {
		t.Errorf("a user's pause was undone: %s", st)
	}
}

// TestStrictLifecycle: --strict-lifecycle keeps the 409s for a sandbox that
// is creating or idle-paused, for clients that test their own waiting.
func TestStrictLifecycle(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	// No warm pool here: a cold create is creating for a while (the
	// engine's create and start), so the exec lands in it.
	srv := emulatortest.New(t, emulatortest.WithStrictLifecycle())
	c := &client{t: t, srv: srv, key: srv.APIKey}
	id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "idleTimeout": 600}).Data()["id"].(string)
	if r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"}); r.Status != http.StatusConflict ||
		!strings.Contains(string(r.Body), "creating") {
		t.Fatalf("exec on a creating sandbox in strict mode: %d %s", r.Status, r.Body)
	}
	c.waitStatus(id, "running")
	c.must(http.StatusOK, "POST", "/_emulator/sandboxes/"+id+"/expire-idle", nil)
	if r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"}); r.Status != http.StatusConflict {
		t.Fatalf("exec on an idle-paused sandbox in strict mode: %d %s", r.Status, r.Body)
	}
	if st := c.status(id); st != "paused" {
		t.Errorf("strict mode woke the sandbox: %s", st)
	}
}
