package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine"
)

var (
	idRE   = regexp.MustCompile(`^sandbox-[a-z0-9]{12}$`)
	timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
)

func inspect(t *testing.T, id string) emulatortest.DockerState {
	t.Helper()
	st, err := emulatortest.Docker(t).Inspect(context.Background(), "rtemu-"+id)
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return st
}

func containerGone(t *testing.T, id string) bool {
	t.Helper()
	_, err := emulatortest.Docker(t).Inspect(context.Background(), "rtemu-"+id)
	return errors.Is(err, engine.ErrNotFound)
}

// TestCreateSeedRequest sends the seed page's request (without mounts) and
// checks the answer, the record and the container.
func TestCreateSeedRequest(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	r := c.must(http.StatusCreated, "POST", "/v1/sandboxes", `{
		"template": "base-ubuntu",
		"name": "build-runner",
		"tags": ["ci"],
		"resources": {"vcpus": 2, "memory": "4GB"},
		"env": {"NODE_ENV": "development"}
	}`)
	d := r.Data()
	id, _ := d["id"].(string)
	if !idRE.MatchString(id) {
		t.Fatalf("id %q", id)
	}
	want := map[string]any{"template": "base-ubuntu", "status": "creating", "name": "build-runner",
		"sshReady": false, "vncReady": false, "idleTimeout": float64(600)}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	res := d["resources"].(map[string]any)
	if res["vcpus"] != float64(2) || res["memory"] != "4GB" || res["disk"] != "10GB" {
		t.Errorf("resources = %v", res)
	}
	if !timeRE.MatchString(d["createdAt"].(string)) {
		t.Errorf("createdAt %v", d["createdAt"])
	}
	if rid, _ := r.JSON["meta"].(map[string]any)["requestId"].(string); !strings.HasPrefix(rid, "req_") || r.Header.Get("X-Request-Id") != rid {
		t.Errorf("requestId %q, header %q", rid, r.Header.Get("X-Request-Id"))
	}
	if _, has := d["rootPassword"]; has {
		t.Error("rootPassword returned")
	}

	start := time.Now()
	sb := c.waitStatus(id, "running")
	t.Logf("creating → running in %v", time.Since(start))
	if sb["tags"].([]any)[0] != "ci" || sb["env"].(map[string]any)["NODE_ENV"] != "development" {
		t.Errorf("sandbox %v", sb)
	}

	st := inspect(t, id)
	if st.Labels["rtemu.sandbox"] != id || st.Labels["rtemu.instance"] == "" {
		t.Errorf("labels %v", st.Labels)
	}
	if st.NanoCPUs != 2e9 || st.MemoryBytes != 4<<30 || st.PidsLimit <= 0 || st.Privileged {
		t.Errorf("limits: cpus %d mem %d pids %d privileged %v", st.NanoCPUs, st.MemoryBytes, st.PidsLimit, st.Privileged)
	}
	found := false
	for _, e := range st.Env {
		found = found || e == "NODE_ENV=development"
	}
	// A warm-pool container was started before the sandbox's env was
	// known; it gets the env with every exec instead (checked below).
	if _, pooled := st.Labels["rtemu.pool"]; !found && !pooled {
		t.Errorf("container env %v", st.Env)
	}
	if out := c.sh(id, `echo $NODE_ENV; pwd; ls -A /workspace | wc -l; test -S /var/run/docker.sock && echo SOCKET || true`); out != "development\n/workspace\n0\n" {
		t.Errorf("inside: %q", out)
	}
	// The name works wherever the id does.
	if got := c.must(http.StatusOK, "GET", "/v1/sandboxes/build-runner", nil).Data()["id"]; got != id {
		t.Errorf("by name: %v", got)
	}
}

func TestCreateDefaults(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := c.create(nil)
	res := sb["resources"].(map[string]any)
	if res["vcpus"] != float64(2) || res["memory"] != "4GB" || res["disk"] != "10GB" {
		t.Errorf("resources %v", res)
	}
	def := c.must(http.StatusOK, "GET", "/v1/projects", nil).List()[0]["id"]
	if sb["idleTimeout"] != float64(600) || sb["name"] != nil || sb["projectId"] != def || sb["sshAuthMethod"] != "none" {
		t.Errorf("defaults %v", sb)
	}
	if len(sb["tags"].([]any)) != 0 || len(sb["mounts"].([]any)) != 0 {
		t.Errorf("tags/mounts %v %v", sb["tags"], sb["mounts"])
	}
	st := inspect(t, sb["id"].(string))
	if st.MemoryBytes != 4<<30 {
		t.Errorf("memory %d", st.MemoryBytes)
	}
	// A sandbox's projectId names a project.
	pid := c.must(201, "POST", "/v1/projects", map[string]any{"name": "p"}).Data()["id"].(string)
	sb = c.create(map[string]any{"resources": map[string]any{"vcpus": 1, "memory": "512MiB"}, "idleTimeout": 0,
		"rootPassword": "hunter2", "metadata": map[string]any{"k": "v"}, "projectId": pid})
	st = inspect(t, sb["id"].(string))
	if st.NanoCPUs != 1e9 || st.MemoryBytes != 512<<20 {
		t.Errorf("limits %d %d", st.NanoCPUs, st.MemoryBytes)
	}
	if sb["idleTimeout"] != float64(0) || sb["sshAuthMethod"] != "password" || sb["metadata"].(map[string]any)["k"] != "v" ||
		sb["projectId"] != pid {
		t.Errorf("sandbox %v", sb)
	}
}

func TestCreateRejects(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	c.create(map[string]any{"name": "taken"})
	tests := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"unknown template", `{"template":"no-such"}`, 400, "bad_request", "template"},
		{"vcpus 0", `{"template":"base-ubuntu","resources":{"vcpus":0}}`, 400, "bad_request", "resources.vcpus"},
		{"memory unit", `{"template":"base-ubuntu","resources":{"memory":"4TB"}}`, 400, "bad_request", "resources.memory"},
		{"idle negative", `{"template":"base-ubuntu","idleTimeout":-1}`, 400, "bad_request", "idleTimeout"},
		{"unknown workspace", `{"template":"base-ubuntu","mounts":[{"workspaceId":"9b84ef42-9c3a-4930-9d4c-45c7f5c22d8e","path":"/workspace"}]}`, 400, "bad_request", "mounts[0].workspaceId"},
		{"duplicate name", `{"template":"base-ubuntu","name":"taken"}`, 409, "conflict", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", "/v1/sandboxes", tt.body)
			if r.Status != tt.status || r.ErrCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q: %s", r.Status, r.ErrCode(), tt.status, tt.code, r.Body)
			}
			if tt.field != "" {
				details, _ := r.JSON["error"].(map[string]any)["details"].([]any)
				if len(details) == 0 || details[0].(map[string]any)["field"] != tt.field {
					t.Fatalf("details %v, want field %s", details, tt.field)
				}
			}
		})
	}
	if n := len(c.must(200, "GET", "/v1/sandboxes", nil).List()); n != 1 {
		t.Fatalf("%d sandboxes after rejected creates, want 1", n)
	}
}

func TestListFiltersAndPagination(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t, emulatortest.WithTemplate("other", ""))
	var ids []string
	for i := 0; i < 7; i++ {
		body := map[string]any{"tags": []string{"all", fmt.Sprintf("n%d", i%2)}}
		if i == 6 {
			body["template"] = "other"
		}
		ids = append(ids, c.create(body)["id"].(string))
	}
	// Newest first, 3 a page, with the cursor in both places.
	var got []string
	cursor := ""
	pages := 0
	for {
		path := "/v1/sandboxes?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := c.must(200, "GET", path, nil)
		pages++
		for _, sb := range r.List() {
			got = append(got, sb["id"].(string))
		}
		meta := r.JSON["meta"].(map[string]any)
		if meta["hasMore"] != r.JSON["hasMore"] || meta["nextCursor"] != r.JSON["nextCursor"] {
			t.Fatalf("meta %v vs top level %v %v", meta, r.JSON["hasMore"], r.JSON["nextCursor"])
		}
		if r.JSON["hasMore"] != true {
			if r.JSON["nextCursor"] != nil {
				t.Fatalf("last page has a cursor: %v", r.JSON["nextCursor"])
			}
			break
		}
		cursor = r.JSON["nextCursor"].(string)
	}
	want := append([]string(nil), ids...)
	for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
		want[i], want[j] = want[j], want[i]
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages %d, got %v, want %v", pages, got, want)
	}

	c.must(200, "DELETE", "/v1/sandboxes/"+ids[0], nil)
	c.must(200, "POST", "/v1/sandboxes/"+ids[1]+"/pause", nil)
	count := func(q string) int { return len(c.must(200, "GET", "/v1/sandboxes"+q, nil).List()) }
	for q, n := range map[string]int{
		"":                                6, // destroyed hidden
		"?status=destroyed":               1,
		"?status=paused":                  1,
		"?status=running":                 5,
		"?tag=n0":                         3, // ids 2, 4, 6 (0 destroyed)
		"?tag=all&tag=n1":                 3,
		"?template=other":                 1,
		"?exclude_template=other":         5,
		"?template=base-ubuntu&tag=n0":    2,
		"?status=running&status=paused":   6,
		"?exclude_template=base-ubuntu":   1,
		"?tag=no-such-tag":                0,
		"?status=destroyed&tag=n0":        1,
		"?limit=1&status=running&tag=all": 1,
	} {
		if got := count(q); got != n {
			t.Errorf("list%s: %d sandboxes, want %d", q, got, n)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=501", "?limit=x", "?cursor=bogus", "?status=sleeping"} {
		if r := c.do("GET", "/v1/sandboxes"+q, nil); r.Status != 400 || r.ErrCode() != "bad_request" {
			t.Errorf("list%s: %d %s", q, r.Status, r.Body)
		}
	}
}

func TestGetUpdateDelete(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := c.create(map[string]any{"name": "first"})
	id := sb["id"].(string)
	c.must(404, "GET", "/v1/sandboxes/sandbox-000000000000", nil)
	if r := c.do("GET", "/v1/sandboxes/nope", nil); r.ErrCode() != "not_found" || r.JSON["error"].(map[string]any)["message"] != "Sandbox not found" {
		t.Fatalf("404 body %s", r.Body)
	}

	pid := c.must(201, "POST", "/v1/projects", map[string]any{"name": "p"}).Data()["id"].(string)
	up := c.must(200, "PATCH", "/v1/sandboxes/first", `{"name":"second","projectId":"`+pid+`"}`).Data()
	if up["name"] != "second" || up["projectId"] != pid {
		t.Fatalf("patched %v", up)
	}
	c.must(404, "GET", "/v1/sandboxes/first", nil)
	def := c.must(http.StatusOK, "GET", "/v1/projects", nil).List()[0]["id"]
	if got := c.must(200, "PATCH", "/v1/sandboxes/"+id, `{"projectId":null}`).Data(); got["projectId"] != def || got["name"] != "second" {
		t.Fatalf("projectId null: %v", got)
	}
	other := c.create(map[string]any{"name": "third"})
	if r := c.do("PATCH", "/v1/sandboxes/third", `{"name":"second"}`); r.Status != 409 || r.ErrCode() != "conflict" {
		t.Fatalf("rename onto a taken name: %d %s", r.Status, r.Body)
	}

	// Sync delete: the container is gone when the answer comes.
	del := c.must(200, "DELETE", "/v1/sandboxes/second", nil).Data()
	if del["id"] != id || del["deleted"] != true {
		t.Fatalf("delete %v", del)
	}
	if !containerGone(t, id) {
		t.Fatal("container still there after sync delete")
	}
	if got := c.must(200, "GET", "/v1/sandboxes/"+id, nil).Data(); got["status"] != "destroyed" {
		t.Fatalf("after delete %v", got)
	}
	// Deleted already: 404, as the hosted API answers (and so async).
	for _, q := range []string{"", "?async=true"} {
		if r := c.do("DELETE", "/v1/sandboxes/"+id+q, nil); r.Status != 404 || r.ErrCode() != "not_found" {
			t.Fatalf("second delete%s: %d %s", q, r.Status, r.Body)
		}
	}
	// The name is free again.
	c.create(map[string]any{"name": "second"})

	// Async delete: destroying, then destroyed and gone.
	oid := other["id"].(string)
	del = c.must(200, "DELETE", "/v1/sandboxes/"+oid+"?async=true", nil).Data()
	if del["deleted"] != false || del["status"] != "destroying" {
		t.Fatalf("async delete %v", del)
	}
	c.waitStatus(oid, "destroyed")
	if !containerGone(t, oid) {
		t.Fatal("container still there after async delete")
	}
	c.must(404, "DELETE", "/v1/sandboxes/sandbox-000000000000", nil)
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(nil)["id"].(string)
	// A counter that keeps its state in its own memory and its pid.
	// sh -c makes the counter its own process, so $$ is its pid.
	c.sh(id, `sh -c 'i=0; while :; do i=$((i+1)); echo "$$ $i" > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.05; done' >/dev/null 2>&1 &`)
	before := strings.Fields(c.sh(id, "sleep 0.3; cat /tmp/counter"))

	r := c.must(200, "POST", "/v1/sandboxes/"+id+"/pause", nil).Data()
	if r["id"] != id || r["status"] != "pausing" {
		t.Fatalf("pause %v", r)
	}
	sb := c.waitStatus(id, "paused")
	if sb["pausedAt"] == nil {
		t.Error("no pausedAt")
	}
	if st := inspect(t, id); !st.Paused {
		t.Fatalf("engine says %+v", st)
	}
	if r := c.must(200, "POST", "/v1/sandboxes/"+id+"/pause", nil).Data(); r["status"] != "paused" {
		t.Fatalf("second pause %v", r)
	}
	if r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"}); r.Status != 409 ||
		!strings.Contains(r.JSON["error"].(map[string]any)["message"].(string), "resume") {
		t.Fatalf("exec while paused: %d %s", r.Status, r.Body)
	}

	r = c.must(200, "POST", "/v1/sandboxes/"+id+"/resume", nil).Data()
	if r["status"] != "resuming" {
		t.Fatalf("resume %v", r)
	}
	sb = c.waitStatus(id, "running")
	if sb["resumedAt"] == nil {
		t.Error("no resumedAt")
	}
	if r := c.must(200, "POST", "/v1/sandboxes/"+id+"/resume", nil).Data(); r["status"] != "running" {
		t.Fatalf("second resume %v", r)
	}
	after := strings.Fields(c.sh(id, "sleep 0.3; cat /tmp/counter"))
	if len(before) != 2 || len(after) != 2 || before[0] != after[0] {
		t.Fatalf("counter process changed: before %v after %v", before, after)
	}
	var b, a int
	fmt.Sscan(before[1], &b)
	fmt.Sscan(after[1], &a)
	if a <= b {
		t.Fatalf("counter did not go on from its state: before %d after %d", b, a)
	}

	// Wrong states.
	c.must(200, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	c.waitStatus(id, "paused")
	// Delete of a paused sandbox works.
	c.must(200, "DELETE", "/v1/sandboxes/"+id, nil)
	if !containerGone(t, id) {
		t.Fatal("paused container not removed")
	}
	for _, op := range []string{"pause", "resume"} {
		if r := c.do("POST", "/v1/sandboxes/"+id+"/"+op, nil); r.Status != 409 || r.ErrCode() != "conflict" ||
			!strings.Contains(string(r.Body), "destroyed") {
			t.Errorf("%s of destroyed: %d %s", op, r.Status, r.Body)
		}
	}
}

func TestExecAPI(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(map[string]any{"env": map[string]any{"FROM_CREATE": "c"}})["id"].(string)
	c.sh(id, "mkdir -p /tmp/work")
	tests := []struct {
		name           string
		body           map[string]any
		stdout, stderr string
		code           float64
	}{
		{"streams apart", map[string]any{"command": "echo out; echo err >&2"}, "out\n", "err\n", 0},
		{"exit 0", map[string]any{"command": "true"}, "", "", 0},
		{"exit 3", map[string]any{"command": "exit 3"}, "", "", 3},
		{"exit 127", map[string]any{"command": "no-such-program"}, "", "", 127},
		{"default cwd", map[string]any{"command": "pwd"}, "/workspace\n", "", 0},
		{"cwd", map[string]any{"command": "pwd", "cwd": "/tmp/work"}, "/tmp/work\n", "", 0},
		{"missing cwd", map[string]any{"command": "pwd", "cwd": "/no/such/dir"}, "", "", 2},
		{"env", map[string]any{"command": `echo "$A $B $FROM_CREATE"`, "env": map[string]any{"A": "1", "B": "two words"}}, "1 two words c\n", "", 0},
		{"quotes and pipes", map[string]any{"command": `printf '%s\n' "a'b" | tr a-z A-Z`}, "A'B\n", "", 0},
		// The command runs in the shell that changed directory (eval): it
		// sees no positional parameters nor the wrapper's variable, and a
		// syntax error is the shell's exit 2, as sh -c gives.
		{"no arguments", map[string]any{"command": `echo "$# [$1] [$2]"`}, "0 [] []\n", "", 0},
		{"wrapper invisible", map[string]any{"command": `echo "${__rtemu_cmd-unset}"; set | grep -c __rtemu || true`}, "unset\n0\n", "", 0},
		{"syntax error", map[string]any{"command": "echo ("}, "", "", 2},
		{"multi-line", map[string]any{"command": "a=1\nif [ $a = 1 ]; then\n  echo yes\nfi\nexit 4"}, "yes\n", "", 4},
		{"exec replaces", map[string]any{"command": "exec echo replaced; echo never"}, "replaced\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.exec(id, tt.body)
			if res["exitCode"] != tt.code || res["stdout"] != tt.stdout || (tt.stderr != "" && res["stderr"] != tt.stderr) {
				t.Fatalf("got %v", res)
			}
			if res["timedOut"] != false || res["durationMs"] == nil || res["executionTime"] != res["durationMs"] {
				t.Fatalf("fields %v", res)
			}
		})
	}

	t.Run("timeout kills", func(t *testing.T) {
		start := time.Now()
		res := c.exec(id, map[string]any{"command": "echo begun; sleep 120; echo never", "timeout": 700})
		if res["exitCode"] != float64(124) || res["timedOut"] != true || res["stdout"] != "begun\n" {
			t.Fatalf("timeout result %v", res)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("timeout took %v", el)
		}
		if n := strings.TrimSpace(c.sh(id, `ps -o args | grep -c '^sleep 120' || true`)); n != "0" {
			t.Fatalf("%s sleep processes left after the timeout", n)
		}
	})
	t.Run("output cap", func(t *testing.T) {
		res := c.exec(id, map[string]any{"command": "head -c 11534336 /dev/zero | tr '\\0' x"})
		if res["stdoutTruncated"] != true || len(res["stdout"].(string)) != 10<<20 || res["exitCode"] != float64(0) {
			t.Fatalf("truncated=%v len=%d exit=%v", res["stdoutTruncated"], len(res["stdout"].(string)), res["exitCode"])
		}
	})
	for _, body := range []string{`{}`, `{"command":"  "}`, `{"command":"true","timeout":0}`, `{"command":"true","timeout":3600001}`, `{"command":"true","cwd":"relative"}`} {
		if r := c.do("POST", "/v1/sandboxes/"+id+"/exec", body); r.Status != 400 {
			t.Errorf("exec %s: %d", body, r.Status)
		}
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const good = "rt_live_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	open := newFakeClient(t)
	strict := newFakeClient(t, emulatortest.WithAPIKeys(good))
	off := newFakeClient(t, emulatortest.WithAuthOff())
	tests := []struct {
		name   string
		c      *client
		header []string
		status int
		code   string
	}{
		{"no key", open, []string{"X-API-Key", ""}, 401, "unauthorized"},
		{"malformed key", open, []string{"X-API-Key", "rt_test_short"}, 401, "invalid_token"},
		{"wrong prefix", open, []string{"X-API-Key", "sk_test_0123456789abcdefghijklmnopqrstuv"}, 401, "invalid_token"},
		{"any well-formed key", open, []string{"X-API-Key", "rt_test_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"}, 200, ""},
		{"bearer", open, []string{"X-API-Key", "", "Authorization", "Bearer rt_test_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"}, 200, ""},
		{"strict: listed key", strict, []string{"X-API-Key", good}, 200, ""},
		{"strict: listed key as bearer", strict, []string{"X-API-Key", "", "Authorization", "Bearer " + good}, 200, ""},
		{"strict: other well-formed key", strict, []string{"X-API-Key", "rt_test_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"}, 401, "invalid_token"},
		{"strict: no key", strict, []string{"X-API-Key", ""}, 401, "unauthorized"},
		{"off: no key", off, []string{"X-API-Key", ""}, 200, ""},
		{"off: garbage key", off, []string{"X-API-Key", "garbage"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.c.do("GET", "/v1/sandboxes", nil, tt.header...)
			if r.Status != tt.status || r.ErrCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q: %s", r.Status, r.ErrCode(), tt.status, tt.code, r.Body)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
	for _, c := range []*client{open, strict} {
		r := c.do("GET", "/health", nil, "X-API-Key", "")
		if r.Status != 200 || r.JSON["status"] != "ok" || r.JSON["docker"] != "ok" || r.JSON["version"] == "" {
			t.Fatalf("health %d %s", r.Status, r.Body)
		}
	}
}

func TestConcurrentCreatesAndDeletes(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := c.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "name": fmt.Sprintf("par-%d", i),
				"resources": map[string]any{"vcpus": 1, "memory": "256MB"}})
			if r.Status != 201 {
				errs <- fmt.Sprintf("create %d: %d %s", i, r.Status, r.Body)
				return
			}
			ids[i] = r.Data()["id"].(string)
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for _, id := range ids {
		c.waitStatus(id, "running")
	}
	errs = make(chan string, n)
	for _, id := range ids {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if r := c.do("DELETE", "/v1/sandboxes/"+id, nil); r.Status != 200 || r.Data()["deleted"] != true {
				errs <- fmt.Sprintf("delete %s: %d %s", id, r.Status, r.Body)
			}
		}(id)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for _, id := range ids {
		if !containerGone(t, id) {
			t.Errorf("container of %s left", id)
		}
	}
	if n := len(c.must(200, "GET", "/v1/sandboxes", nil).List()); n != 0 {
		t.Fatalf("%d sandboxes listed after deleting all", n)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulatortest.WithTemplate("missing", "rtemu-test/none:missing"))
	list := c.must(200, "GET", "/v1/templates", nil).List()
	var names []string
	for _, tpl := range list {
		names = append(names, tpl["name"].(string))
		if tpl["name"] == "missing" && tpl["imagePresent"] != false {
			t.Errorf("missing image reported present: %v", tpl)
		}
		if tpl["name"] == "base-ubuntu" && tpl["imagePresent"] != true {
			t.Errorf("test image not present: %v", tpl)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "base-ubuntu,desktop-ubuntu,missing" {
		t.Fatalf("templates %v", names)
	}
	// An image that cannot be had ends the sandbox failed, naming the image
	// and the flag.
	r := c.must(201, "POST", "/v1/sandboxes", map[string]any{"template": "missing"})
	sb := c.waitStatus(r.Data()["id"].(string), "failed")
	msg, _ := sb["error"].(string)
	if !strings.Contains(msg, "rtemu-test/none:missing") || !strings.Contains(msg, "--template missing=IMAGE") {
		t.Fatalf("error %q", msg)
	}
	if !containerGone(t, sb["id"].(string)) {
		t.Fatal("failed sandbox left a container")
	}
	// A failed sandbox can be deleted.
	c.must(200, "DELETE", "/v1/sandboxes/"+sb["id"].(string), nil)
}
