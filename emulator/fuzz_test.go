package emulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFuzzedBadRequests sends 500 requests made at random (seeded, so a
// failure can be replayed) from malformed bodies, unknown ids, odd methods,
// content types and queries: none may answer 5xx, and none may change
// anything.
func TestFuzzedBadRequests(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	id := c.create(map[string]any{"name": "fuzz-target", "tags": []string{"keep"}})["id"].(string)
	ws := c.workspace(map[string]any{"name": "fuzz"})
	snapshot := func() []any {
		var out []any
		for _, path := range []string{"/v1/sandboxes", "/v1/sandboxes/" + id, "/v1/workspaces/" + ws, "/v1/ssh-keys", "/_emulator/faults"} {
			d := c.must(http.StatusOK, "GET", path, nil).JSON["data"]
			out = append(out, strip(d))
		}
		return out
	}
	before := snapshot()
	execsBefore := countExecs(c.activity(id))

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("RTEMU_FUZZ_SEED"); v != "" { // replay a failure
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RTEMU_FUZZ_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (RTEMU_FUZZ_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	valid := []string{
		`{"template":"base-ubuntu","name":"x","tags":["a"],"resources":{"vcpus":2,"memory":"1GB"},"env":{"A":"b"}}`,
		`{"command":"echo hi","timeout":1000,"cwd":"/workspace","env":{"A":"b"}}`,
		`{"name":"renamed","projectId":null}`,
		`{"name":"k","publicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}`,
		`{"name":"a.txt","type":"file","contents":"x"}`,
		`{"operation":"rename","target":"b.txt"}`,
		`{"ids":["/a.txt"]}`,
	}
	targets := []struct{ method, path string }{
		{"POST", "/v1/sandboxes"}, {"POST", "/v1/sandboxes/" + id + "/exec"}, {"PATCH", "/v1/sandboxes/" + id},
		{"POST", "/v1/ssh-keys"}, {"POST", "/v1/workspaces"}, {"PATCH", "/v1/workspaces/" + ws},
		{"POST", "/v1/workspaces/" + ws + "/files"}, {"PUT", "/v1/workspaces/" + ws + "/files/a.txt"},
		{"DELETE", "/v1/workspaces/" + ws + "/files"}, {"POST", "/_emulator/faults"},
	}
	unknown := []struct{ method, path string }{
		{"GET", "/v1/sandboxes/%s"}, {"DELETE", "/v1/sandboxes/%s"}, {"POST", "/v1/sandboxes/%s/pause"},
		{"POST", "/v1/sandboxes/%s/resume"}, {"POST", "/v1/sandboxes/%s/exec"}, {"GET", "/v1/sandboxes/%s/stats"},
		{"GET", "/v1/sandboxes/%s/activity"}, {"GET", "/v1/sandboxes/%s/url?port=3000"}, {"DELETE", "/v1/ssh-keys/%s"},
		{"GET", "/v1/workspaces/%s"}, {"DELETE", "/v1/workspaces/%s"}, {"GET", "/v1/workspaces/%s/files"},
	}
	queries := []string{"/v1/sandboxes?limit=%s", "/v1/sandboxes?cursor=%s", "/v1/sandboxes/" + id + "/activity?limit=%s",
		"/v1/sandboxes?status=%s", "/v1/sandboxes/" + id + "/url?port=%s", "/v1/workspaces/" + ws + "/direct?path=%s"}
	methods := []string{"PUT", "PATCH", "TRACE", "OPTIONS", "PROPFIND"}
	cts := []string{"application/json", "", "text/plain", "application/xml", "multipart/form-data", "application/json; charset=utf-16", "application/json;;"}

	client := &http.Client{Timeout: 30 * time.Second}
	for i := range 500 {
		var method, path string
		var body []byte
		switch k := rng.IntN(10); {
		case k < 5: // a route that changes things, with a body that is not JSON
			tg := targets[rng.IntN(len(targets))]
			method, path = tg.method, tg.path
			body = breakJSON(rng, valid[rng.IntN(len(valid))])
		case k < 7: // an id that does not exist
			u := unknown[rng.IntN(len(unknown))]
			method, path = u.method, fmt.Sprintf(u.path, junkID(rng))
			if method == "POST" {
				body = []byte(valid[1])
			}
		case k < 9: // a query that is not valid
			path = fmt.Sprintf(queries[rng.IntN(len(queries))], junkQuery(rng))
			method = "GET"
		default: // a method the route does not take
			tg := targets[rng.IntN(len(targets))]
			method, path = methods[rng.IntN(len(methods))], tg.path
			body = breakJSON(rng, valid[rng.IntN(len(valid))])
		}
		req, err := http.NewRequest(method, c.srv.URL+path, bytes.NewReader(body))
		if err != nil {
			continue // the URL itself is not one (a client could not send it)
		}
		req.Header.Set("X-API-Key", c.key)
		if ct := cts[rng.IntN(len(cts))]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d %s %s: %v", i, method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 && body != nil && method != "OPTIONS" {
			t.Errorf("request %d %s %q with a broken body %q was taken: %d %.200s", i, method, path, body, resp.StatusCode, b)
		}
		if resp.StatusCode >= 500 {
			t.Errorf("request %d %s %q body %q: %d %s", i, method, path, body, resp.StatusCode, b)
		}
	}
	if after := snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("state changed:\nbefore %v\nafter  %v", before, after)
	}
	if n := countExecs(c.activity(id)); n != execsBefore {
		t.Errorf("%d commands ran", n-execsBefore)
	}
}

// breakJSON returns a version of a valid JSON body that is not valid JSON.
func breakJSON(rng *rand.Rand, s string) []byte {
	for {
		b := []byte(s)
		switch rng.IntN(4) {
		case 0:
			b = b[:rng.IntN(len(b))] // cut short
		case 1:
			b[rng.IntN(len(b))] = byte(rng.IntN(256)) // one byte changed
		case 2:
			at := rng.IntN(len(b))
			b = append(b[:at], append([]byte{"{}[]\":,\\"[rng.IntN(8)]}, b[at:]...)...) // a stray token
		case 3:
			b = append(b, []byte(`}{"x"`)...) // trailing garbage
		}
		if !json.Valid(b) {
			return b
		}
	}
}

func junkID(rng *rand.Rand) string {
	alphabet := "abcdefghijklmnopqrstuvwxyz0123456789-_.%~"
	n := 1 + rng.IntN(70)
	var sb strings.Builder
	if rng.IntN(2) == 0 {
		sb.WriteString("sandbox-")
	}
	for range n {
		sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
	}
	return strings.ReplaceAll(sb.String(), "%", "%25")
}

func junkQuery(rng *rand.Rand) string {
	return []string{"-1", "0", "abc", "99999999999999999999", "%00", "1.5", "%2F..%2F..%2Fetc%2Fpasswd", "running,paused", "%ZZ"}[rng.IntN(9)]
}

// strip drops what changes by itself (activity times) from an answer.
func strip(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if k == "lastActivityAt" || k == "lastAccessedAt" || k == "sizeBytes" || k == "updatedAt" || k == "sshReady" || k == "vncReady" {
				continue
			}
			out[k] = strip(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = strip(x[i])
		}
		return out
	}
	return v
}

func countExecs(evs []map[string]any) int {
	n := 0
	for _, e := range evs {
		if e["eventType"] == "exec" {
			n++
		}
	}
	return n
}
