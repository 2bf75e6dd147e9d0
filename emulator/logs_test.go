package emulator_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLogsShowRtemusOwnLines: GET /_emulator/logs has rtemu's recent log
// lines (its requests among them, never a key), and ?follow=1 streams new
// ones as they are logged.
func TestLogsShowRtemusOwnLines(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	c.must(http.StatusOK, "GET", "/v1/sandboxes?marker=one", nil)
	lines := func(r response) []map[string]any {
		raw, _ := r.Data()["lines"].([]any)
		out := []map[string]any{}
		for _, x := range raw {
			out = append(out, x.(map[string]any))
		}
		return out
	}
	got := lines(c.must(http.StatusOK, "GET", "/_emulator/logs", nil))
	var serving, request bool
	for _, l := range got {
		serving = serving || l["msg"] == "rtemu serving"
		attrs, _ := l["attrs"].(string)
		request = request || (l["msg"] == "request" && strings.Contains(attrs, "path=/v1/sandboxes") && l["level"] == "INFO")
		if strings.Contains(attrs, c.key) {
			t.Errorf("a line has the API key: %v", l)
		}
	}
	if !serving || !request {
		t.Errorf("lines %v lack the start or the request", got)
	}
	if n := len(lines(c.must(http.StatusOK, "GET", "/_emulator/logs?limit=1", nil))); n != 1 {
		t.Errorf("limit=1 gave %d lines", n)
	}

	t.Run("follow", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", c.srv.URL+"/_emulator/logs?follow=1&limit=1", nil)
		req.Header.Set("X-API-Key", c.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
			t.Fatalf("%d %s", resp.StatusCode, ct)
		}
		events := make(chan map[string]any, 64)
		go func() {
			defer close(events)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					var m map[string]any
					if json.Unmarshal([]byte(d), &m) == nil {
						events <- m
					}
				}
			}
		}()
		// A request made now shows on the stream.
		c.must(http.StatusNotFound, "GET", "/v1/sandboxes/followed-one", nil)
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m, ok := <-events:
				if !ok {
					t.Fatal("the stream ended")
				}
				if a, _ := m["attrs"].(string); strings.Contains(a, "/v1/sandboxes/followed-one") && strings.Contains(a, "status=404") {
					return
				}
			case <-deadline:
				t.Fatal("the new request did not show on the stream")
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=1001", "limit=x", "follow=perhaps"} {
			if r := c.do("GET", "/_emulator/logs?"+q, nil); r.Status != http.StatusBadRequest || r.ErrCode() == "" {
				t.Errorf("%s: %d %s", q, r.Status, r.Body)
			}
		}
	})
}
