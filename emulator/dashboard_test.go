package emulator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

const strictKey = "rt_live_STRICTstrictSTRICTstrict01234567"

func TestDashboardPageAndAssetsNeedNoKey(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t, emulatortest.WithAPIKeys(strictKey))
	cases := []struct {
		name, method, path string
		status             int
		contentType        string
	}{
		{"page", "GET", "/", 200, "text/html"},
		{"page HEAD", "HEAD", "/", 200, "text/html"},
		{"module", "GET", "/_emulator/dashboard/app.js", 200, "text/javascript"},
		{"stylesheet", "GET", "/_emulator/dashboard/style.css", 200, "text/css"},
		{"icon", "GET", "/_emulator/dashboard/favicon.svg", 200, "image/svg+xml"},
		{"missing asset", "GET", "/_emulator/dashboard/nope.js", 404, "application/json"},
		{"asset dir", "GET", "/_emulator/dashboard/", 404, "application/json"},
		{"escape attempt", "GET", "/_emulator/dashboard/..%2f..%2fgo.mod", 404, "application/json"},
		// The data behind the page still needs the key.
		{"info needs key", "GET", "/_emulator/info", 401, "application/json"},
		{"events need key", "GET", "/_emulator/events", 401, "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, c.srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			if tc.status == 200 {
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
					t.Errorf("Content-Security-Policy %q does not keep the page to its own origin", csp)
				}
			}
		})
	}
}

func TestEmulatorInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []emulatortest.Option
		auth string
	}{
		{"default", nil, "default"},
		{"strict", []emulatortest.Option{emulatortest.WithAPIKeys(strictKey)}, "strict"},
		{"off", []emulatortest.Option{emulatortest.WithAuthOff()}, "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClient(t, tc.opts...)
			r := c.must(http.StatusOK, "GET", "/_emulator/info", nil)
			d := r.Data()
			if d["version"] != "test" || d["dataDir"] != c.srv.DataDir || d["auth"] != tc.auth {
				t.Errorf("version %v, dataDir %v (want %s), auth %v (want %s)", d["version"], d["dataDir"], c.srv.DataDir, d["auth"], tc.auth)
			}
			if d["sshAddr"] == "" {
				t.Error("no sshAddr")
			}
			eng, _ := d["engine"].(map[string]any)
			if eng == nil || eng["kind"] != "fake" || eng["version"] == "" || eng["apiVersion"] == "" || eng["host"] == "" {
				t.Errorf("engine %v", d["engine"])
			}
			tpls, _ := d["templates"].([]any)
			if len(tpls) != 2 {
				t.Fatalf("templates %v", d["templates"])
			}
			first := tpls[0].(map[string]any)
			if first["name"] != "base-ubuntu" || first["imagePresent"] != true || first["image"] == "" {
				t.Errorf("template %v", first)
			}
		})
	}
}

// The dashboard says how a missing image is made: a recipe template's is
// built (rtemu templates build RECIPE), any other pulled.
func TestEmulatorInfoSaysHowImagesAreMade(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t, emulatortest.WithRecipeTemplate("py-recipe", "base-ubuntu", "rtemu-test/not-built:1"))
	tpls, _ := c.must(http.StatusOK, "GET", "/_emulator/info", nil).Data()["templates"].([]any)
	got := map[string]map[string]any{}
	for _, x := range tpls {
		m := x.(map[string]any)
		got[m["name"].(string)] = m
	}
	if r := got["py-recipe"]; r == nil || r["recipe"] != "base-ubuntu" || r["imagePresent"] != false || r["image"] != "rtemu-test/not-built:1" {
		t.Errorf("recipe template %v", r)
	}
	if b := got["base-ubuntu"]; b == nil || b["recipe"] != nil {
		t.Errorf("a plain image's template %v", b)
	}
	// /v1/templates is the contract's: no recipe there.
	for _, x := range c.must(http.StatusOK, "GET", "/v1/templates", nil).List() {
		if _, has := x["recipe"]; has {
			t.Errorf("/v1/templates has recipe: %v", x)
		}
	}
}

// openEvents opens the change feed and returns its events.
func openEvents(t *testing.T, ctx context.Context, url string, header map[string]string) (int, <-chan sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	opened := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sseEvent, 100)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(out)
		return resp.StatusCode, out
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	go func() {
		defer resp.Body.Close()
		readEvents(resp.Body, opened, out)
	}()
	return resp.StatusCode, out
}

func TestEventsStreamEverySandboxChange(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := time.Now() // event times are counted from about here
	status, events := openEvents(t, ctx, c.srv.URL+"/_emulator/events", map[string]string{"X-API-Key": c.key})
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	created := time.Now()
	id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}).Data()["id"].(string)
	c.waitStatus(id, "running")
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)

	// Every status the sandbox passed through arrives, in order.
	want := []string{"creating", "running", "pausing", "paused", "destroying", "destroyed"}
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended; got %v", got)
			}
			var ch struct{ Kind, ID, Status string }
			if err := json.Unmarshal([]byte(ev.Data), &ch); err != nil || ev.Event != "change" {
				t.Fatalf("event %q %q: %v", ev.Event, ev.Data, err)
			}
			if ch.Kind != "sandbox" || ch.ID != id {
				continue
			}
			if len(got) == 0 {
				if d := opened.Add(ev.At).Sub(created); d > time.Second {
					t.Errorf("first change came %v after the create, want under a second", d)
				}
			}
			if len(got) == 0 || got[len(got)-1] != ch.Status {
				got = append(got, ch.Status)
			}
		case <-deadline:
			t.Fatalf("changes %v, want %v", got, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("changes %v, want %v", got, want)
	}
}

// EventSource cannot send headers, so the feed alone takes ?key=.
func TestEventsKeyInQueryOnlyForTheFeed(t *testing.T) {
	t.Parallel()
	strict := newFakeClient(t, emulatortest.WithAPIKeys(strictKey))
	open := newFakeClient(t)
	other := "rt_test_" + strings.Repeat("x", 32)
	cases := []struct {
		name   string
		c      *client
		path   string
		status int
	}{
		{"feed, key in query", open, "/_emulator/events?key=" + other, 200},
		{"feed, no key", open, "/_emulator/events", 401},
		{"feed, malformed key in query", open, "/_emulator/events?key=nope", 401},
		{"feed, strict, right key in query", strict, "/_emulator/events?key=" + strictKey, 200},
		{"feed, strict, other key in query", strict, "/_emulator/events?key=" + other, 401},
		{"API, key in query is not a key", open, "/v1/sandboxes?key=" + other, 401},
		{"info, key in query is not a key", open, "/_emulator/info?key=" + other, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			status, _ := openEvents(t, ctx, tc.c.srv.URL+tc.path, nil)
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
		})
	}
}
