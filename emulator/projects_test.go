package emulator_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestProjects: the projects API, with a default project from the start; a
// sandbox's projectId must name a project; a project in use is deleted only
// with force, which unassigns its sandboxes.
func TestProjects(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)

	list := c.must(http.StatusOK, "GET", "/v1/projects", nil).List()
	if len(list) != 1 || list[0]["isDefault"] != true || list[0]["name"] != "Default" {
		t.Fatalf("projects at the start: %v", list)
	}
	def := list[0]["id"].(string)

	p := c.must(http.StatusCreated, "POST", "/v1/projects", map[string]any{"name": "Agents", "color": "#FF8800"}).Data()
	pid := p["id"].(string)
	if p["name"] != "Agents" || p["color"] != "#ff8800" || p["isDefault"] != false || p["createdAt"] == nil {
		t.Fatalf("created %v", p)
	}
	if got := c.must(http.StatusOK, "GET", "/v1/projects/"+pid, nil).Data(); got["name"] != "Agents" {
		t.Fatalf("get %v", got)
	}
	if got := c.must(http.StatusOK, "PATCH", "/v1/projects/"+pid, map[string]any{"name": "Bots"}).Data(); got["name"] != "Bots" || got["color"] != "#ff8800" {
		t.Fatalf("patched %v", got)
	}
	if n := len(c.must(http.StatusOK, "GET", "/v1/projects", nil).List()); n != 2 {
		t.Fatalf("%d projects after a create", n)
	}

	// A sandbox's projectId names a project, on create and on PATCH.
	const missing = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"
	if r := c.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "projectId": missing}); r.Status != 400 ||
		!strings.Contains(string(r.Body), "projectId") {
		t.Fatalf("create with an unknown project: %d %s", r.Status, r.Body)
	}
	in := c.create(map[string]any{"projectId": pid})["id"].(string)
	other := c.create(map[string]any{"projectId": def})["id"].(string)
	if r := c.do("PATCH", "/v1/sandboxes/"+other, map[string]any{"projectId": missing}); r.Status != 400 {
		t.Fatalf("PATCH to an unknown project: %d %s", r.Status, r.Body)
	}
	ids := func(path string) []string {
		var out []string
		for _, sb := range c.must(http.StatusOK, "GET", path, nil).List() {
			out = append(out, sb["id"].(string))
		}
		return out
	}
	if got := ids("/v1/sandboxes?projectId=" + pid); len(got) != 1 || got[0] != in {
		t.Errorf("projectId filter: %v, want [%s]", got, in)
	}

	// In use: 409 and nothing changes; force unassigns.
	r := c.do("DELETE", "/v1/projects/"+pid, nil)
	if r.Status != http.StatusConflict || r.ErrCode() != "PROJECT_IN_USE" || !strings.Contains(string(r.Body), in) {
		t.Fatalf("delete in use: %d %s", r.Status, r.Body)
	}
	if got := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+in, nil).Data()["projectId"]; got != pid {
		t.Fatalf("a refused delete changed the sandbox: projectId %v", got)
	}
	c.must(http.StatusOK, "DELETE", "/v1/projects/"+pid+"?force=true", nil)
	if got := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+in, nil).Data()["projectId"]; got != def {
		t.Errorf("after a forced delete projectId is %v, want the default project %s", got, def)
	}
	if r := c.do("GET", "/v1/projects/"+pid, nil); r.Status != http.StatusNotFound {
		t.Errorf("deleted project: %d", r.Status)
	}
	if r := c.do("DELETE", "/v1/projects/"+def+"?force=true", nil); r.Status != http.StatusConflict {
		t.Errorf("delete of the default project: %d %s", r.Status, r.Body)
	}

	// A reset brings the default project back, the same one.
	c.must(http.StatusOK, "POST", "/_emulator/reset", nil)
	if list := c.must(http.StatusOK, "GET", "/v1/projects", nil).List(); len(list) != 1 || list[0]["id"] != def {
		t.Errorf("projects after a reset: %v", list)
	}
}
