package emulator_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// poolIDs waits until the template's pool holds n started containers and
// returns the sandbox ids they were made for.
func poolIDs(t *testing.T, srv *emulatortest.Server, template string, n int) map[string]bool {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for srv.Service().WarmPoolReady(template) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the %s pool has %d ready containers, want %d", template, srv.Service().WarmPoolReady(template), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cs, err := emulatortest.Docker(t).List(context.Background(), map[string]string{
		sandbox.LabelInstance: srv.Service().Instance(), sandbox.LabelPool: template})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range cs {
		if c.State != "running" {
			t.Errorf("pool container %s is %s", c.Name, c.State)
		}
		ids[c.Labels[sandbox.LabelSandbox]] = true
	}
	return ids
}

// TestWarmPoolLikeCold: a sandbox handed out by the warm pool cannot be told
// from one made cold with the same request: env in execs, limits, hostname,
// labels, working dir, record. A sandbox with mounts is made cold.
func TestWarmPoolLikeCold(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulatortest.WithWarmPool("base-ubuntu", 2))
	pool := poolIDs(t, c.srv, "base-ubuntu", 2)
	if len(pool) != 2 {
		t.Fatalf("pool containers %v", pool)
	}

	req := func(template string) map[string]any {
		return map[string]any{"template": template, "env": map[string]any{"FOO": "bar baz", "PATH2": "x"},
			"resources": map[string]any{"vcpus": 1, "memory": "512MB"}, "metadata": map[string]any{"k": "v"}}
	}
	start := time.Now()
	r := c.must(http.StatusCreated, "POST", "/v1/sandboxes", req("base-ubuntu"))
	warm := c.waitStatus(r.Data()["id"].(string), "running")
	warmTook := time.Since(start)
	cold := c.create(req("desktop-ubuntu")) // desktop-ubuntu has no pool
	wid, cid := warm["id"].(string), cold["id"].(string)
	if !pool[wid] {
		t.Fatalf("sandbox %s did not come from the pool %v", wid, pool)
	}
	if pool[cid] {
		t.Fatalf("desktop sandbox %s came from the base pool", cid)
	}
	t.Logf("warm create to running: %v", warmTook)

	// Records: same shape, same values but id, name, template and times.
	for _, k := range []string{"status", "resources", "env", "metadata", "tags", "image"} {
		if !equalJSON(warm[k], cold[k]) {
			t.Errorf("%s: warm %v, cold %v", k, warm[k], cold[k])
		}
	}

	// Execs see the sandbox's env, the exec's env over it, the hostname.
	for _, id := range []string{wid, cid} {
		got := c.sh(id, `echo "$FOO|$PATH2|$(hostname)|$(pwd)"`)
		if want := "bar baz|x|" + strings.TrimPrefix(id, "sandbox-") + "|/workspace\n"; got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
		res := c.exec(id, map[string]any{"command": `echo "$FOO"`, "env": map[string]any{"FOO": "over"}})
		if res["stdout"] != "over\n" {
			t.Errorf("%s: exec env over the sandbox's: %v", id, res)
		}
	}
	// The environment an exec sees is the same but for the hostname.
	envOf := func(id string) string {
		out := c.sh(id, "env | grep -v -e ^HOSTNAME= -e ^RTEMU_EXEC_ID= | sort")
		return out
	}
	if w, cl := envOf(wid), envOf(cid); w != cl {
		t.Errorf("exec env differs:\nwarm %s\ncold %s", w, cl)
	}

	// The engine's view: limits, labels, working dir, init.
	ws, cs := inspect(t, wid), inspect(t, cid)
	if ws.NanoCPUs != 1e9 || ws.MemoryBytes != 512<<20 || ws.NanoCPUs != cs.NanoCPUs || ws.MemoryBytes != cs.MemoryBytes ||
		ws.PidsLimit != cs.PidsLimit || ws.WorkingDir != cs.WorkingDir || ws.Init != cs.Init || ws.Privileged {
		t.Errorf("engine state: warm %+v\ncold %+v", ws, cs)
	}
	if ws.Labels[sandbox.LabelSandbox] != wid || ws.Labels[sandbox.LabelInstance] != cs.Labels[sandbox.LabelInstance] ||
		ws.Labels[sandbox.LabelTemplate] != "base-ubuntu" {
		t.Errorf("labels %v", ws.Labels)
	}
	if got := strings.TrimSpace(c.sh(wid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")); got != "536870912" {
		t.Errorf("memory limit inside the warm sandbox: %q", got)
	}

	// The pool refills; a default create takes a pool container as is.
	pool = poolIDs(t, c.srv, "base-ubuntu", 2)
	def := c.create(nil)
	if !pool[def["id"].(string)] {
		t.Fatalf("default sandbox %s not from the pool %v", def["id"], pool)
	}
	if st := inspect(t, def["id"].(string)); st.NanoCPUs != int64(min(sandbox.DefaultVCPUs, hostCPUs(t)))*1e9 || st.MemoryBytes != 4<<30 {
		t.Errorf("default limits %+v", st)
	}

	// Mounts are fixed at create: such a sandbox is made cold.
	pool = poolIDs(t, c.srv, "base-ubuntu", 2)
	wsID := c.workspace(map[string]any{})
	mounted := c.create(map[string]any{"mounts": []map[string]any{{"workspaceId": wsID, "path": "/workspace/data"}}})
	if pool[mounted["id"].(string)] {
		t.Fatal("a sandbox with mounts came from the pool")
	}
	if c.srv.Service().WarmPoolReady("base-ubuntu") != 2 {
		t.Error("a create with mounts took a pool container")
	}

	// Delete of a pooled sandbox removes its container.
	c.must(200, "DELETE", "/v1/sandboxes/"+wid, nil)
	if !containerGone(t, wid) {
		t.Error("pooled sandbox's container left after delete")
	}
}

func hostCPUs(t *testing.T) int {
	info, err := emulatortest.Docker(t).Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.CPUs
}

func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !equalJSON(x[k], y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestWarmPoolReset: a reset removes the pool's containers with every other
// and the pool fills again with new ones.
func TestWarmPoolReset(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulatortest.WithWarmPool("base-ubuntu", 2))
	before := poolIDs(t, c.srv, "base-ubuntu", 2)
	c.must(200, "POST", "/_emulator/reset", nil)
	for id := range before {
		if !containerGone(t, id) {
			t.Errorf("pool container of %s left after reset", id)
		}
	}
	after := poolIDs(t, c.srv, "base-ubuntu", 2)
	for id := range after {
		if before[id] {
			t.Errorf("pool container %s survived the reset", id)
		}
	}
	if len(after) != 2 {
		t.Errorf("pool after reset: %v", after)
	}
}
