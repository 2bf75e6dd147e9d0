package emulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// kind is a JSON value's type as a client's decoder sees it.
func kind(v any) string {
	if v == nil {
		return "null"
	}
	return reflect.TypeOf(v).Kind().String()
}

func example(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameShape says how got differs from the hosted example: a field missing,
// or of another type (null where a string is documented, say). mayBeNull
// lists fields rtemu has reason to leave null here.
func sameShape(t *testing.T, what string, want, got map[string]any, mayBeNull ...string) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: no %s (the hosted example has %v)", what, k, v)
		case g == nil && contains(mayBeNull, k):
		case kind(g) != kind(v):
			t.Errorf("%s: %s is %v (%s), the hosted example has a %s", what, k, g, kind(g), kind(v))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestHostedShapes compares rtemu's objects with the hosted API's
// documented examples (testdata/hosted-*.json, from the API reference):
// every field there, of the same type; the owner the local user; every
// sandbox in a project; a workspace's nfsPath its folder.
func TestHostedShapes(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	def := c.must(http.StatusOK, "GET", "/v1/projects", nil).List()[0]
	if def["isDefault"] != true {
		t.Fatalf("first project %v", def)
	}

	ws := c.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "Docs Project", "slug": "docs-project"}).Data()
	sameShape(t, "workspace create", example(t, "hosted-workspace.json"), ws, "lastAccessedAt")
	wsID := ws["id"].(string)
	if want := filepath.Join(c.srv.DataDir, "workspaces", wsID); ws["nfsPath"] != want {
		t.Errorf("nfsPath %v, want %s", ws["nfsPath"], want)
	} else if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Errorf("nfsPath is no folder: %v", err)
	}
	listed := c.must(http.StatusOK, "GET", "/v1/workspaces", nil).Data()["workspaces"].([]any)[0].(map[string]any)
	sameShape(t, "workspace list", example(t, "hosted-workspace.json"), listed, "lastAccessedAt")
	for _, w := range []map[string]any{ws, listed} {
		if w["ownerUserId"] != sandbox.LocalUserID || w["ownerDisplayName"] != sandbox.LocalUserDisplayName || w["ownerEmail"] != sandbox.LocalUserEmail {
			t.Errorf("workspace owner: %v %v %v", w["ownerUserId"], w["ownerDisplayName"], w["ownerEmail"])
		}
	}

	sb := c.create(map[string]any{"name": "build-runner", "tags": []string{"ci"},
		"mounts": []map[string]any{{"workspaceId": wsID, "path": "/workspace", "readOnly": true}}})
	// vncUrl is null but on the desktop template.
	sameShape(t, "sandbox", example(t, "hosted-sandbox.json"), sb, "vncUrl")
	for k, want := range map[string]any{"ownerUserId": sandbox.LocalUserID, "ownerDisplayName": sandbox.LocalUserDisplayName,
		"ownerEmail": sandbox.LocalUserEmail, "projectId": def["id"], "publicIp": ""} {
		if sb[k] != want {
			t.Errorf("sandbox %s = %v, want %v", k, sb[k], want)
		}
	}
	if sb["ip"] == "" {
		t.Error("a running sandbox has no ip")
	}
	id := sb["id"].(string)

	evs := c.activity(id)
	want := example(t, "hosted-activity-event.json")
	for _, e := range evs {
		if len(e) != len(want) {
			t.Errorf("event %v has %d fields, the hosted event %d", e["eventType"], len(e), len(want))
		}
		sameShape(t, "event "+e["eventType"].(string), want, e, "actorUserId")
		for _, k := range []string{"threadId", "agentRunId", "workspaceId", "toolSlug", "installableAgentInstallId", "runmeshNodeId", "codeExecutionId"} {
			if e[k] != nil {
				t.Errorf("event %v: %s = %v, want null", e["eventType"], k, e[k])
			}
		}
		if e["orgId"] != sandbox.LocalOrgID || e["sandboxId"] != id {
			t.Errorf("event %v: orgId %v, sandboxId %v", e["eventType"], e["orgId"], e["sandboxId"])
		}
		if user := e["actorType"] == "user"; user != (e["actorUserId"] == sandbox.LocalUserID) || !user && e["actorUserId"] != nil {
			t.Errorf("event %v: actorType %v, actorUserId %v", e["eventType"], e["actorType"], e["actorUserId"])
		}
	}
	if len(evs) < 2 {
		t.Fatalf("events %v", eventTypes(evs))
	}

	// A second delete of the same sandbox is a 404, async too.
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	for _, q := range []string{"", "?async=true"} {
		if r := c.do("DELETE", "/v1/sandboxes/"+id+q, nil); r.Status != http.StatusNotFound || r.ErrCode() != "not_found" {
			t.Errorf("second delete%s: %d %s", q, r.Status, r.Body)
		}
	}
	// An async delete, then a delete while it is destroying or after: never
	// a second 200 deleted:true.
	other := c.create(nil)["id"].(string)
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+other+"?async=true", nil)
	c.waitStatus(other, "destroyed")
	c.must(http.StatusNotFound, "DELETE", "/v1/sandboxes/"+other+"?async=true", nil)
}

// feed reads GET /v1/activity with a query, every page (following the
// cursor) when all, and returns the events.
func (c *client) feed(query url.Values, all bool) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	for page := 0; page < 100; page++ {
		r := c.must(http.StatusOK, "GET", "/v1/activity?"+query.Encode(), nil)
		for _, e := range r.Data()["events"].([]any) {
			out = append(out, e.(map[string]any))
		}
		next, _ := r.JSON["nextCursor"].(string)
		if meta := r.JSON["meta"].(map[string]any); meta["nextCursor"] != r.JSON["nextCursor"] || meta["hasMore"] != r.JSON["hasMore"] {
			c.t.Fatalf("meta %v and top level %v %v differ", meta, r.JSON["hasMore"], r.JSON["nextCursor"])
		}
		if !all || next == "" {
			return out
		}
		query.Set("cursor", next)
	}
	c.t.Fatal("more than 100 pages")
	return nil
}

// TestOrganisationFeed: GET /v1/activity has every sandbox's events (a
// destroyed one's too) and the secrets', newest first, with the documented
// filters and a cursor that walks the same list a page at a time.
func TestOrganisationFeed(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	start := time.Now().UTC().Add(-time.Second)
	a := c.create(map[string]any{"name": "a"})["id"].(string)
	b := c.create(map[string]any{"name": "b"})["id"].(string)
	c.sh(a, "echo one")
	c.sh(b, "echo two")
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+b, nil)
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "K", "value": "v"})

	everything := c.feed(url.Values{}, false)
	seen := map[string]bool{}
	for i, e := range everything {
		typ, _ := e["resourceType"].(string)
		rid, _ := e["resourceId"].(string)
		seen[typ+":"+rid] = true
		if i > 0 && e["createdAt"].(string) > everything[i-1]["createdAt"].(string) {
			t.Errorf("not newest first at %d: %v after %v", i, e["createdAt"], everything[i-1]["createdAt"])
		}
	}
	for _, k := range []string{"sandbox:" + a, "sandbox:" + b, "secret:K"} {
		if !seen[k] {
			t.Errorf("no event of %s in the feed: %v", k, seen)
		}
	}
	if everything[0]["eventType"] != "secret.created" {
		t.Errorf("newest event %v, want secret.created", everything[0]["eventType"])
	}

	// Walked a page of 2 at a time, the feed is the same list.
	paged := c.feed(url.Values{"limit": {"2"}}, true)
	if ids(paged) != ids(everything) {
		t.Errorf("paged feed differs:\n%s\n%s", ids(paged), ids(everything))
	}

	for _, tc := range []struct {
		query url.Values
		check func(e map[string]any) bool
		want  int // at least
	}{
		{url.Values{"resource_type": {"sandbox"}, "resource_id": {b}}, func(e map[string]any) bool { return e["resourceId"] == b }, 3},
		{url.Values{"resource_id": {a}}, func(e map[string]any) bool { return e["sandboxId"] == a }, 3},
		{url.Values{"event_type": {"exec"}}, func(e map[string]any) bool { return e["eventType"] == "exec" }, 2},
		{url.Values{"resource_type": {"secret"}}, func(e map[string]any) bool { return e["resourceType"] == "secret" && e["sandboxId"] == nil }, 1},
		{url.Values{"event_type": {"exec"}, "resource_id": {a}, "limit": {"1"}}, func(e map[string]any) bool { return e["eventType"] == "exec" && e["resourceId"] == a }, 1},
		{url.Values{"since": {start.Format(time.RFC3339Nano)}, "until": {time.Now().UTC().Add(time.Minute).Format(time.RFC3339)}}, func(map[string]any) bool { return true }, len(everything)},
	} {
		t.Run(tc.query.Encode(), func(t *testing.T) {
			got := c.feed(tc.query, true)
			if len(got) < tc.want {
				t.Errorf("%d events, want at least %d", len(got), tc.want)
			}
			for _, e := range got {
				if !tc.check(e) {
					t.Errorf("event does not match the filter: %v", e)
				}
			}
		})
	}
	for _, q := range []string{"since=" + url.QueryEscape(time.Now().UTC().Add(time.Hour).Format(time.RFC3339)), "until=2000-01-01T00:00:00Z",
		"resource_type=workspace", "event_type=nothing"} {
		if got := c.feed(mustQuery(t, q), false); len(got) != 0 {
			t.Errorf("?%s: %d events, want none", q, len(got))
		}
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=nope", "since=yesterday", "until=1",
		"since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"} {
		if r := c.do("GET", "/v1/activity?"+q, nil); r.Status != http.StatusBadRequest || r.ErrCode() != "bad_request" {
			t.Errorf("?%s: %d %s", q, r.Status, r.Body)
		}
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ids(evs []map[string]any) string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e["id"].(string))
	}
	return fmt.Sprint(out)
}
