package emulator_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// TestUpstreamFields: the fields clients of the hosted API read are there:
// hasWritableWorkspaceMount, ip (the sandbox's own address), publicIp
// (""), the owner fields (the local user), and the activity feed's
// resourceType, resourceId, actorType, status and summary.
func TestUpstreamFields(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ws := c.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "fields"}).Data()["id"].(string)
	for _, tc := range []struct {
		name     string
		mounts   []map[string]any
		writable bool
	}{
		{"no mounts", nil, false},
		{"read-only", []map[string]any{{"workspaceId": ws, "path": "/workspace/ro", "readOnly": true}}, false},
		{"writable", []map[string]any{{"workspaceId": ws, "path": "/workspace/ro", "readOnly": true},
			{"workspaceId": ws, "path": "/workspace/rw"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{}
			if tc.mounts != nil {
				body["mounts"] = tc.mounts
			}
			sb := c.create(body)
			if sb["hasWritableWorkspaceMount"] != tc.writable {
				t.Errorf("hasWritableWorkspaceMount %v, want %v", sb["hasWritableWorkspaceMount"], tc.writable)
			}
			for f, want := range map[string]any{"ownerUserId": sandbox.LocalUserID, "ownerDisplayName": sandbox.LocalUserDisplayName,
				"ownerEmail": sandbox.LocalUserEmail, "publicIp": ""} {
				if v, ok := sb[f]; !ok || v != want {
					t.Errorf("%s: %v (present %v), want %q", f, v, ok, want)
				}
			}
			ip, _ := sb["ip"].(string)
			if ip == "" {
				t.Fatalf("ip %v on a running sandbox", sb["ip"])
			}
			// The address the sandbox has on its own interface.
			if own := c.sh(sb["id"].(string), "hostname -i"); !strings.Contains(own, ip) {
				t.Errorf("ip %s; the sandbox says %q", ip, own)
			}
		})
	}

	id := c.create(nil)["id"].(string)
	c.sh(id, "echo hi")
	c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "exit 3"})
	byType := map[string]map[string]any{}
	for _, e := range c.activity(id) {
		if _, seen := byType[e["eventType"].(string)]; !seen {
			byType[e["eventType"].(string)] = e
		}
	}
	for _, tc := range []struct {
		eventType, actor, status, summary string
	}{
		{"created", "user", "completed", "Sandbox created"},
		{"running", "system", "completed", "Sandbox running"},
		{"exec", "user", "completed", "exit 3 in"},
	} {
		e := byType[tc.eventType]
		if e == nil {
			t.Errorf("no %s event", tc.eventType)
			continue
		}
		if e["resourceType"] != "sandbox" || e["resourceId"] != id || e["actorType"] != tc.actor || e["status"] != tc.status ||
			!strings.Contains(e["summary"].(string), tc.summary) {
			t.Errorf("%s event: %v", tc.eventType, e)
		}
	}
	if c.do("DELETE", "/v1/sandboxes/"+id, nil); c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data()["ip"] != "" {
		t.Error("a destroyed sandbox still has an ip")
	}
}

// TestSessionTokens: Authorization: Bearer <JWT-shaped session token> is
// accepted by default, as upstream takes session tokens, and refused in
// strict mode unless it is one of the --api-key values.
func TestSessionTokens(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEyMyJ9.c2lnbmF0dXJl"
	const other = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzQ1NiJ9.c2lnbmF0dXJl"
	def := emulatortest.New(t, emulatortest.WithFake())
	strict := emulatortest.New(t, emulatortest.WithFake(), emulatortest.WithAPIKeys("rt_test_abcdefghijklmnopqrstuvwxyz012345", jwt))
	for _, tc := range []struct {
		name    string
		srv     *emulatortest.Server
		headers []string
		status  int
	}{
		{"default: bearer JWT", def, []string{"Authorization", "Bearer " + jwt}, 200},
		{"default: JWT as X-API-Key", def, []string{"X-API-Key", jwt}, 401},
		{"default: not a JWT", def, []string{"Authorization", "Bearer eyJnotajwt"}, 401},
		{"strict: listed JWT", strict, []string{"Authorization", "Bearer " + jwt}, 200},
		{"strict: unlisted JWT", strict, []string{"Authorization", "Bearer " + other}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{t: t, srv: tc.srv}
			r := c.do("GET", "/v1/sandboxes", nil, tc.headers...)
			if r.Status != tc.status {
				t.Errorf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if tc.status == 401 && r.ErrCode() != "invalid_token" {
				t.Errorf("code %q", r.ErrCode())
			}
		})
	}
}
