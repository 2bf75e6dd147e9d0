package emulator_test

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// TestActivityFeed walks a sandbox through its life and reads the feed
// back, newest first, page by page.
func TestActivityFeed(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	id := c.create(map[string]any{"idleTimeout": 0})["id"].(string)
	c.exec(id, map[string]any{"command": "echo hi; exit 2"})
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/resume", nil)
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)

	want := []string{"destroyed", "resumed", "paused", "exec", "running", "created"}
	all := c.activity(id)
	if got := eventTypes(all); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for _, e := range all {
		if e["sandboxId"] != id || e["severity"] != "info" || e["title"] == "" || !timeRE.MatchString(e["createdAt"].(string)) ||
			e["id"] == "" || e["attributes"] == nil {
			t.Errorf("event %v", e)
		}
	}
	exec := all[3]["attributes"].(map[string]any)
	if exec["command"] != "echo hi; exit 2" || exec["exitCode"] != float64(2) || exec["durationMs"] == nil {
		t.Errorf("exec attributes %v", exec)
	}

	// Pages of two, with the cursor in meta and at the top level.
	var paged []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more than three pages of two")
		}
		q := url.Values{"limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/activity?"+q.Encode(), nil)
		for _, e := range r.Data()["events"].([]any) {
			paged = append(paged, e.(map[string]any)["eventType"].(string))
		}
		m := r.JSON["meta"].(map[string]any)
		if m["hasMore"] != r.JSON["hasMore"] || m["nextCursor"] != r.JSON["nextCursor"] {
			t.Errorf("meta %v, top level %v %v", m, r.JSON["hasMore"], r.JSON["nextCursor"])
		}
		if r.JSON["hasMore"] != true {
			if r.JSON["nextCursor"] != nil {
				t.Errorf("last page with cursor %v", r.JSON["nextCursor"])
			}
			break
		}
		cursor = r.JSON["nextCursor"].(string)
	}
	if !reflect.DeepEqual(paged, want) {
		t.Errorf("paged %v, want %v", paged, want)
	}

	for _, tc := range []struct {
		query string
		want  int
	}{
		{"limit=0", 400}, {"limit=501", 400}, {"limit=x", 400}, {"cursor=nonsense", 400},
	} {
		if r := c.do("GET", "/v1/sandboxes/"+id+"/activity?"+tc.query, nil); r.Status != tc.want || r.ErrCode() != "bad_request" {
			t.Errorf("%s: %d %s", tc.query, r.Status, r.Body)
		}
	}
	if r := c.do("GET", "/v1/sandboxes/sandbox-000000000000/activity", nil); r.Status != 404 {
		t.Errorf("unknown sandbox: %d", r.Status)
	}
}
