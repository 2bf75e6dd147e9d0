package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testtool"
)

// dash is the dashboard of a test rtemu, open in a headless Chromium tab.
type dash struct {
	t   *testing.T
	ctx context.Context // the tab
	srv *emulatortest.Server
	key string // the key the test's own API calls use

	problems *pageProblems
}

// pageProblems are uncaught exceptions and CSP refusals in the page.
type pageProblems struct {
	mu   sync.Mutex
	list []string
}

// in is the same page, reporting to a subtest.
func (d *dash) in(t *testing.T) *dash {
	c := *d
	c.t = t
	return &c
}

type openOpts struct {
	dark bool
	path string // after the origin; default "/"
}

// open starts a browser for the test and loads the dashboard of srv.
func open(t *testing.T, srv *emulatortest.Server, o openOpts) *dash {
	t.Helper()
	return connect(t, srv).openPage(o)
}

// connect is the test's API client for srv, with no browser yet: tests of
// features that may not be built probe first and start Chromium only when
// there is something to see.
func connect(t *testing.T, srv *emulatortest.Server) *dash {
	return &dash{t: t, srv: srv, key: srv.APIKey, problems: &pageProblems{}}
}

// openPage starts a browser and loads the dashboard.
func (d *dash) openPage(o openOpts) *dash {
	t, srv := d.t, d.srv
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(testtool.Chromium(t)),
			// Tests run as root in CI containers, where Chromium's sandbox
			// cannot start.
			chromedp.NoSandbox,
			chromedp.WindowSize(1440, 900),
		)...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	d.ctx = ctx
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// Runs before the tab closes (cleanups run last-in first-out).
	t.Cleanup(func() {
		d.problems.mu.Lock()
		defer d.problems.mu.Unlock()
		for _, p := range d.problems.list {
			t.Errorf("page: %s", p)
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				d.problems.mu.Lock()
				d.problems.list = append(d.problems.list, m.String())
				d.problems.mu.Unlock()
			}
		}
	}()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: srv.URL,
		}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	// A headless tab never has the focus; the clipboard wants a focused page.
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if o.dark {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if o.path == "" {
		o.path = "/"
	}
	d.navigate(srv.URL + o.path)
	// Marks this document: a reload would lose it.
	d.do(chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	return d
}

// do runs page actions with a deadline.
func (d *dash) do(actions ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		d.t.Fatalf("page: %v", err)
	}
}

// js evaluates an expression (awaiting a promise) in the page.
func js[T any](d *dash, expr string) T {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds, failing the test
// with what after the timeout.
func (d *dash) waitFor(what, cond string, timeout time.Duration) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		d.t.Fatalf("waited %v for %s (%s): %v", timeout, what, cond, err)
	}
}

// clear empties an input (SetValue refuses "").
func (d *dash) clear(sel string) {
	d.t.Helper()
	d.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ''`, sel)))
}

// row is a JavaScript expression for a sandbox's table row.
func row(id string) string {
	return fmt.Sprintf(`document.querySelector('#sandbox-rows tr[data-id=%q]')`, id)
}

func (d *dash) rowStatus(id string, status string, timeout time.Duration) {
	d.t.Helper()
	d.waitFor(id+" shown as "+status, fmt.Sprintf(`%s?.querySelector('.status')?.dataset.status === %q`, row(id), status), timeout)
}

func (d *dash) live() {
	d.t.Helper()
	// Generous: on a loaded machine (the whole suite on two cores) a
	// browser and its first requests can take a while.
	d.waitFor("the change feed to open", `document.querySelector('#conn').dataset.state === 'live'`, 30*time.Second)
}

// ---- The test's own API client --------------------------------------------

// call sends one API request as a program would, and decodes the answer.
func (d *dash) call(method, path string, body any, headers ...string) (int, map[string]any) {
	d.t.Helper()
	return apiCall(d.t, d.srv.URL, d.key, method, path, body, headers...)
}

func apiCall(t testing.TB, base, key, method, path string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw), "contentType": resp.Header.Get("Content-Type")}
	}
	return resp.StatusCode, out
}

func data(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}

// create makes a sandbox through the API and returns its id at once.
func (d *dash) create(body map[string]any) string {
	d.t.Helper()
	st, out := d.call("POST", "/v1/sandboxes", body)
	if st != http.StatusCreated {
		d.t.Fatalf("create: %d %v", st, out)
	}
	return data(out)["id"].(string)
}

// apiStatus waits until the API reports the status.
func (d *dash) apiStatus(id, status string) {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last any
	for time.Now().Before(deadline) {
		if st, out := d.call("GET", "/v1/sandboxes/"+id, nil); st == http.StatusOK {
			if last = data(out)["status"]; last == status {
				return
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	d.t.Fatalf("sandbox %s: status %v, want %s", id, last, status)
}

// notBuilt says whether the endpoint answers 501 in this build.
func (d *dash) notBuilt(method, path string, body any) bool {
	d.t.Helper()
	st, _ := d.call(method, path, body)
	return st == http.StatusNotImplemented
}
