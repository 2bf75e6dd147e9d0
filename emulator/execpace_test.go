package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	dockerclient "github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// execAll runs the commands in one sandbox at once and returns each answer's
// status, exit code and stdout (or the error).
func execAll(c *client, id string, cmds []string) []string {
	out := make([]string, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"command": cmd})
			req, _ := http.NewRequest("POST", c.srv.URL+"/v1/sandboxes/"+id+"/exec", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", c.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var env struct {
				Data struct {
					ExitCode int    `json:"exitCode"`
					Stdout   string `json:"stdout"`
				} `json:"data"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&env)
			out[i] = fmt.Sprintf("%d %d %q", resp.StatusCode, env.Data.ExitCode, env.Data.Stdout)
		}()
	}
	wg.Wait()
	return out
}

// TestExecBurstReusesAgents: a burst of 30 commands in one sandbox is run by
// the exec agents already started (8 of them, kept idle after 8 commands
// ran at once) instead of starting one agent by Docker exec per command
// beyond them, as it did (issue 15: 30 `true` took 2.2 s).
func TestExecBurstReusesAgents(t *testing.T) {
	t.Parallel()
	ways := []struct {
		name string
		opts []emulatortest.Option
	}{
		{"linked", nil},
		{"streams", []emulatortest.Option{emulatortest.WithExecAgentStreams()}},
	}
	for _, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			t.Parallel()
			execBurstReusesAgents(t, newClient(t, way.opts...), way.name == "linked")
		})
	}
}

func execBurstReusesAgents(t *testing.T, c *client, linked bool) {
	id := c.create(nil)["id"].(string)
	eight := make([]string, 8)
	for i := range eight {
		eight[i] = "sleep 0.3; echo " + strconv.Itoa(i)
	}
	w := watchExecs(t, "rtemu-"+id)
	for i, got := range execAll(c, id, eight) {
		if want := fmt.Sprintf("200 0 %q", strconv.Itoa(i)+"\n"); got != want {
			t.Fatalf("warm-up exec %d: %s, want %s", i, got, want)
		}
	}
	// Linked, the hub started with the container: no Docker exec at all.
	// On the streams the count is seen to count: 8 commands at once in a
	// new sandbox start agents (two: docs/exec-agent.md).
	if n := w.count(); linked && n != 0 {
		t.Fatalf("%d Docker execs for 8 concurrent commands in a new linked sandbox, want 0 (its hub starts with it)", n)
	} else if !linked && n < 1 {
		t.Fatalf("%d exec agents started by 8 concurrent commands in a new sandbox; the count does not work", n)
	}
	burst := make([]string, 30)
	for i := range burst {
		burst[i] = "echo " + strconv.Itoa(i)
	}
	start := time.Now()
	for i, got := range execAll(c, id, burst) {
		if want := fmt.Sprintf("200 0 %q", strconv.Itoa(i)+"\n"); got != want {
			t.Errorf("exec %d: %s, want %s", i, got, want)
		}
	}
	took := time.Since(start)
	n := w.count()
	t.Logf("30 concurrent execs: %v, %d exec agents started", took, n)
	// 0 when every command found an idle agent; a few more only when the
	// machine is so slow that a command waited past the pacing's second.
	if n > 12 {
		t.Fatalf("%d exec agents started by a burst of 30 commands with 8 idle; want (almost) none", n)
	}
}

// TestWarmPoolAgentStarted: a sandbox from the warm pool runs its first
// command on an exec agent started while it waited in the pool: from the
// create to the answer of its first exec, no Docker exec is made.
func TestWarmPoolAgentStarted(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulatortest.WithWarmPool("base-ubuntu", 1))
	pool := poolIDs(t, c.srv, "base-ubuntu", 1)
	var w *execWatch
	for id := range pool {
		w = watchExecs(t, "rtemu-"+id)
	}
	id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}).Data()["id"].(string)
	if !pool[id] {
		t.Fatalf("sandbox %s not from the pool %v", id, pool)
	}
	if out := c.sh(id, "echo hi"); out != "hi\n" {
		t.Fatalf("first exec: %q", out)
	}
	if n := w.count(); n != 0 {
		t.Fatalf("%d Docker execs between the create and its first exec's answer; want 0 (the agent started in the pool)", n)
	}
}

// TestActivitySeesEveryExec: the feed is written in the background, yet a
// read of it right after commands answered shows every one of them.
func TestActivitySeesEveryExec(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(nil)["id"].(string)
	cmds := make([]string, 20)
	for i := range cmds {
		cmds[i] = "echo " + strconv.Itoa(i)
	}
	execAll(c, id, cmds)
	n := 0
	for _, e := range c.activity(id) {
		if e["eventType"] == "exec" {
			n++
		}
	}
	if n != len(cmds) {
		t.Fatalf("%d exec events right after %d execs answered", n, len(cmds))
	}
	c.sh(id, "true")
	if evs := c.activity(id); evs[0]["eventType"] != "exec" || evs[0]["attributes"].(map[string]any)["command"] != "true" {
		t.Fatalf("newest event after an exec: %v", evs[0])
	}
}

// TestColdCreatesBounded: of 10 sandboxes asked for at once, at most 4
// containers are being created and started by the engine at any moment (the
// rest wait in creating), and all 10 end running.
func TestColdCreatesBounded(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	cli, err := dockerclient.New(dockerclient.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := cli.Events(ctx, dockerclient.EventsListOptions{Filters: make(dockerclient.Filters).Add("type", "container").Add("label", "rtemu.instance="+c.srv.Service().Instance()).Add("label", "rtemu.sandbox").Add("event", "create").Add("event", "start")}).Messages
	var (
		mu               sync.Mutex
		inFlight, most   int
		created, started int
	)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for m := range msgs {
			mu.Lock()
			switch m.Action {
			case "create":
				inFlight, created = inFlight+1, created+1
			case "start":
				inFlight, started = inFlight-1, started+1
			}
			most = max(most, inFlight)
			done := started == 10
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}).Data()["id"].(string)
	}
	for _, id := range ids {
		c.waitStatus(id, "running")
	}
	select {
	case <-watched:
	case <-time.After(30 * time.Second):
		t.Fatal("the engine's events did not show 10 starts")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d created, %d started, at most %d at once", created, started, most)
	if most > 4 {
		t.Fatalf("%d containers were being created at once; want at most 4", most)
	}
}
