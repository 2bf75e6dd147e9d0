package emulator_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestListShapes: every paginated answer carries hasMore and nextCursor both
// in meta and at the top level, with the cursor null (present, not missing)
// on the last page; the status filter takes every upstream status; tags is
// accepted as tag, repeated or comma-separated.
func TestListShapes(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	a := c.create(map[string]any{"tags": []string{"ci", "x"}})["id"].(string)
	b := c.create(map[string]any{"tags": []string{"ci"}})["id"].(string)

	// pagination keys as raw JSON, to tell null from missing
	pageKeys := func(t *testing.T, path string) (meta, top map[string]json.RawMessage) {
		t.Helper()
		r := c.must(http.StatusOK, "GET", path, nil)
		var body struct {
			Meta map[string]json.RawMessage `json:"meta"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r.Body, &top); err != nil {
			t.Fatal(err)
		}
		return body.Meta, top
	}
	for _, path := range []string{"/v1/sandboxes", "/v1/sandboxes?limit=1", "/v1/sandboxes/" + a + "/activity",
		"/v1/sandboxes/" + a + "/activity?limit=1", "/v1/ssh-keys"} {
		t.Run(path, func(t *testing.T) {
			meta, top := pageKeys(t, path)
			for where, m := range map[string]map[string]json.RawMessage{"meta": meta, "top level": top} {
				hm, ok1 := m["hasMore"]
				nc, ok2 := m["nextCursor"]
				if !ok1 || !ok2 {
					t.Fatalf("%s lacks hasMore or nextCursor: %v", where, m)
				}
				if string(hm) == "false" && string(nc) != "null" {
					t.Errorf("%s: last page with nextCursor %s", where, nc)
				}
				if string(hm) == "true" && string(nc) == "null" {
					t.Errorf("%s: more pages but no cursor", where)
				}
			}
		})
	}

	ids := func(path string) map[string]bool {
		t.Helper()
		out := map[string]bool{}
		for _, sb := range c.must(http.StatusOK, "GET", path, nil).List() {
			out[sb["id"].(string)] = true
		}
		return out
	}
	for _, st := range []string{"pending", "stopped", "orphaned", "suspected_missing"} {
		if got := ids("/v1/sandboxes?status=" + st); len(got) != 0 {
			t.Errorf("status=%s: %v, want an empty page", st, got)
		}
	}
	if got := ids("/v1/sandboxes?status=running&status=orphaned"); !got[a] || !got[b] {
		t.Errorf("status=running&status=orphaned: %v", got)
	}
	for _, tc := range []struct {
		query string
		want  map[string]bool
	}{
		{"tags=ci", map[string]bool{a: true, b: true}},
		{"tags=ci,x", map[string]bool{a: true}},
		{"tags=ci&tags=x", map[string]bool{a: true}},
		{"tag=ci&tags=x", map[string]bool{a: true}},
		{"tags=nope", map[string]bool{}},
	} {
		got := ids("/v1/sandboxes?" + tc.query)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
		for id := range tc.want {
			if !got[id] {
				t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
			}
		}
	}
}
