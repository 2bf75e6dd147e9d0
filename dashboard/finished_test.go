package dashboard_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// These run on the fake engine: they are about the page, not containers.

// selectRow opens a sandbox's details.
func (d *dash) selectRow(id string) {
	d.t.Helper()
	d.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sandbox-rows tr[data-id=%q] [data-action="select"]`, id))))
	d.waitFor("the details", fmt.Sprintf(`document.querySelector('#detail-body:not([hidden]) #detail-head') !== null && %s?.classList.contains('selected')`, row(id)), 5*time.Second)
}

// A failed sandbox shows its error once, offers Destroy and the error's
// fix, and nothing that cannot work (run, SSH, dev URL, desktop, terminal).
func TestFailedSandboxOffersOnlyWhatWorks(t *testing.T) {
	t.Parallel()
	srv := emulatortest.New(t, emulatortest.WithFake(), emulatortest.WithTemplate("python-3.12", "rtemu-test/never-pulled:none"))
	d := connect(t, srv)
	id := d.create(map[string]any{"template": "python-3.12", "name": "broken"})
	d.apiStatus(id, "failed")
	_, out := d.call("GET", "/v1/sandboxes/"+id, nil)
	msg, _ := data(out)["error"].(string)
	if len(msg) < 20 {
		t.Fatalf("error %q", msg)
	}
	d.openPage(openOpts{})
	d.live()
	d.rowStatus(id, "failed", 5*time.Second)
	if got := js[[]string](d, fmt.Sprintf(`[...%s.querySelectorAll('button')].map((b) => b.dataset.action)`, row(id))); strings.Join(got, " ") != "select destroy" {
		t.Errorf("the row offers %v", got)
	}
	d.selectRow(id)
	d.waitFor("the error", `document.querySelector('#detail-error-text')?.textContent.length > 0`, 5*time.Second)
	// Once: on the whole page, and not in a tooltip either (rtemu's log
	// has its own line about it, which is the log's).
	page := js[string](d, `document.body.innerText + [...document.querySelectorAll('[title]')].map((e) => e.title).join(' ')`)
	inLog := js[string](d, `document.querySelector('#logs').innerText`)
	if n := strings.Count(page, msg) - strings.Count(inLog, msg); n != 1 {
		t.Errorf("the error shows %d times", n)
	}
	if !js[bool](d, fmt.Sprintf(`document.querySelector('#logs').innerText.includes(%q)`, msg)) {
		t.Log("rtemu's log panel does not have the failure (yet)")
	}
	// Only Destroy, and the fix.
	actions := js[[]string](d, `[...document.querySelectorAll('#detail-body button, #detail-body a')].filter((b) => b.offsetParent !== null).map((b) => b.id || b.dataset.action || b.textContent)`)
	if all := " " + strings.Join(actions, " ") + " "; !strings.Contains(all, " destroy ") || !strings.Contains(all, " detail-fix-copy ") {
		t.Errorf("the details offer %v; want Destroy and the fix", actions)
	}
	for _, a := range actions {
		if a != "destroy" && a != "detail-fix-copy" && a != "✕" {
			t.Errorf("the details offer %q for a failed sandbox", a)
		}
	}
	fix := js[string](d, `document.querySelector('#detail-fix')?.textContent`)
	if fix != "docker pull rtemu-test/never-pulled:none" {
		t.Errorf("fix %q", fix)
	}
	// A picture to look at, in the temporary dir.
	if err := os.WriteFile(filepath.Join(os.TempDir(), "rtemu-dashboard-failed.png"), screenshot(t, d), 0o644); err != nil {
		t.Fatal(err)
	}
	d.do(chromedp.Click(chromedp.CSS("#detail-fix-copy")))
	d.waitFor("the fix on the clipboard", `navigator.clipboard.readText().then((t) => t === 'docker pull rtemu-test/never-pulled:none')`, 5*time.Second)
	// Destroy works.
	d.do(chromedp.Click(chromedp.CSS(`#detail-head [data-action="destroy"]`)))
	d.waitFor("the confirmation", `document.querySelector('#confirm-dialog').open`, 5*time.Second)
	d.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	d.waitFor("the row to go", row(id)+` === null`, 10*time.Second)
}

// A recipe template whose image is not built says how to build it; a plain
// image not there says how to pull it. The engine in use is in the header.
func TestTemplatesNotBuiltAndTheEngine(t *testing.T) {
	t.Parallel()
	srv := emulatortest.New(t, emulatortest.WithFake(), emulatortest.WithRecipeTemplate("py-recipe", "base-ubuntu", "rtemu-test/not-built:1"),
		emulatortest.WithTemplate("plain", "rtemu-test/never-pulled:none"))
	d := open(t, srv, openOpts{})
	d.live()
	d.waitFor("the templates", `document.querySelectorAll('#info-templates li').length === 4`, 5*time.Second)
	tpl := func(name string) string {
		return js[string](d, fmt.Sprintf(`document.querySelector('#info-templates li[data-template=%q]').innerText`, name))
	}
	if got := tpl("py-recipe"); !strings.Contains(got, "not built") || !strings.Contains(got, "rtemu templates build base-ubuntu") || strings.Contains(got, "not pulled") {
		t.Errorf("recipe template: %q", got)
	}
	if got := tpl("plain"); !strings.Contains(got, "image not pulled") || !strings.Contains(got, "docker pull rtemu-test/never-pulled:none") {
		t.Errorf("plain template: %q", got)
	}
	if got := tpl("base-ubuntu"); !strings.Contains(got, "image present") {
		t.Errorf("present template: %q", got)
	}
	engine := js[string](d, `document.querySelector('#engine').hidden ? '' : document.querySelector('#engine').textContent`)
	if engine != "fake fake" { // the fake engine's kind, and its version "fake"
		t.Errorf("header engine %q", engine)
	}
}

// The ssh command shows whole (wrapped, never cut off) and copies whole.
func TestSSHCommandIsWhole(t *testing.T) {
	t.Parallel()
	d := connect(t, emulatortest.New(t, emulatortest.WithFake()))
	id := d.create(map[string]any{"template": "base-ubuntu", "name": "a-rather-long-sandbox-name-for-the-ssh-command"})
	d.apiStatus(id, "running")
	_, out := d.call("GET", "/v1/sandboxes/"+id+"/ssh", nil)
	want, _ := data(out)["command"].(string)
	if want == "" {
		t.Fatalf("ssh info %v", out)
	}
	d.openPage(openOpts{})
	d.live()
	d.selectRow(id)
	d.waitFor("the ssh command", `!document.querySelector('#ssh-copy').disabled`, 5*time.Second)
	got := js[[]any](d, `(() => { const c = document.querySelector('#ssh-command'); return [c.innerText, c.scrollWidth <= c.clientWidth + 1, c.getBoundingClientRect().right <= c.closest('.copy-field').getBoundingClientRect().right]; })()`)
	if got[0] != want || got[1] != true || got[2] != true {
		t.Errorf("shown %q (want %q), fits %v, inside its box %v", got[0], want, got[1], got[2])
	}
}

// Search and filters by name, status, tag and template.
func TestSearchAndFilter(t *testing.T) {
	t.Parallel()
	d := connect(t, emulatortest.New(t, emulatortest.WithFake()))
	ids := map[string]string{}
	for _, sb := range []map[string]any{
		{"template": "base-ubuntu", "name": "web-1", "tags": []string{"ci"}},
		{"template": "base-ubuntu", "name": "web-2", "tags": []string{"ci", "node"}},
		{"template": "desktop-ubuntu", "name": "qa-desk", "tags": []string{"e2e"}},
		{"template": "base-ubuntu", "name": "db"},
	} {
		ids[sb["name"].(string)] = d.create(sb)
	}
	for _, id := range ids {
		d.apiStatus(id, "running")
	}
	if st, out := d.call("POST", "/v1/sandboxes/"+ids["web-2"]+"/pause", nil); st != http.StatusOK {
		t.Fatalf("pause: %d %v", st, out)
	}
	d.apiStatus(ids["web-2"], "paused")
	d.openPage(openOpts{})
	d.live()
	d.waitFor("the rows", `document.querySelectorAll('#sandbox-rows tr').length === 4`, 5*time.Second)
	shown := func() string {
		return js[string](d, `[...document.querySelectorAll('#sandbox-rows tr')].filter((r) => !r.hidden).map((r) => r.querySelector('[data-action="select"]').textContent).sort().join(' ')`)
	}
	set := func(sel, v string) {
		d.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('input', { bubbles: true })); })()`, sel, v)))
	}
	for _, tc := range []struct {
		name  string
		apply func()
		want  string
	}{
		{"typed name", func() { d.do(chromedp.SendKeys(chromedp.CSS("#filter-text"), "web")) }, "web-1 web-2"},
		{"and status", func() { set("#filter-status", "paused") }, "web-2"},
		{"cleared", func() { d.do(chromedp.Click(chromedp.CSS("#filter-clear"))) }, "db qa-desk web-1 web-2"},
		{"tag", func() { set("#filter-tag", "ci") }, "web-1 web-2"},
		{"tag typed", func() { set("#filter-tag", ""); d.do(chromedp.SendKeys(chromedp.CSS("#filter-text"), "e2e")) }, "qa-desk"},
		{"template", func() { d.clear("#filter-text"); set("#filter-template", "base-ubuntu") }, "db web-1 web-2"},
		{"id", func() { set("#filter-template", ""); set("#filter-text", ids["db"]) }, "db"},
		{"nothing", func() { set("#filter-text", "no-such-thing") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.apply()
			if got := shown(); got != tc.want {
				t.Errorf("shown %q, want %q", got, tc.want)
			}
		})
	}
	if !js[bool](d, `!document.querySelector('#sandbox-nomatch').hidden && document.querySelector('#sandbox-count').textContent === '0 of 4'`) {
		t.Errorf("no match: count %q", js[string](d, `document.querySelector('#sandbox-count').textContent`))
	}
	// A sandbox made now that does not match stays hidden; one that does shows.
	d.do(chromedp.Click(chromedp.CSS("#filter-clear")))
	set("#filter-text", "web")
	other := d.create(map[string]any{"template": "base-ubuntu", "name": "other"})
	web3 := d.create(map[string]any{"template": "base-ubuntu", "name": "web-3"})
	d.waitFor("the new rows", row(other)+` !== null && `+row(web3)+` !== null`, 5*time.Second)
	if got := shown(); got != "web-1 web-2 web-3" {
		t.Errorf("after creates: %q", got)
	}
}

// Reset asks first; Cancel changes nothing, OK empties rtemu.
func TestResetAsksFirst(t *testing.T) {
	t.Parallel()
	d := connect(t, emulatortest.New(t, emulatortest.WithFake()))
	id := d.create(map[string]any{"template": "base-ubuntu", "name": "doomed"})
	d.apiStatus(id, "running")
	d.openPage(openOpts{})
	d.live()
	d.waitFor("the row", row(id)+` !== null`, 5*time.Second)
	d.do(chromedp.Click(chromedp.CSS("#reset-button")))
	d.waitFor("the confirmation", `document.querySelector('#confirm-dialog').open`, 5*time.Second)
	if !js[bool](d, `document.activeElement.value === 'cancel' && document.querySelector('#confirm-title').textContent === 'Reset rtemu?'`) {
		t.Error("the confirmation does not start on Cancel, or is not the reset's")
	}
	d.do(chromedp.KeyEvent(kb.Escape))
	d.waitFor("the confirmation to close", `!document.querySelector('#confirm-dialog').open`, 5*time.Second)
	d.apiStatus(id, "running") // nothing happened

	d.do(chromedp.Click(chromedp.CSS("#reset-button")))
	d.waitFor("the confirmation", `document.querySelector('#confirm-dialog').open`, 5*time.Second)
	d.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	d.waitFor("the toast", `document.querySelector('#toasts').textContent.includes('1 sandbox removed')`, 10*time.Second)
	d.waitFor("the empty list", row(id)+` === null && !document.querySelector('#sandbox-empty').hidden`, 10*time.Second)
	if st, out := d.call("GET", "/v1/sandboxes", nil); st != http.StatusOK || len(out["data"].([]any)) != 0 {
		t.Errorf("after the reset the API lists %v", out)
	}
	// The destroy dialog is still the destroy dialog.
	id = d.create(map[string]any{"template": "base-ubuntu", "name": "after"})
	d.waitFor("the row", row(id)+` !== null`, 5*time.Second)
	d.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sandbox-rows tr[data-id=%q] [data-action="destroy"]`, id))))
	d.waitFor("the destroy confirmation", `document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-ok').textContent === 'Destroy sandbox'`, 5*time.Second)
	d.do(chromedp.KeyEvent(kb.Escape))
}

// rtemu's own log, live: lines logged after the page opened show without a
// reload; request lines only when asked for; no key in it.
func TestLogPanelIsLive(t *testing.T) {
	t.Parallel()
	d := open(t, emulatortest.New(t, emulatortest.WithFake()), openOpts{})
	d.live()
	d.waitFor("the start line", `[...document.querySelectorAll('#log-lines .log-line')].some((l) => l.dataset.msg === 'rtemu serving')`, 10*time.Second)
	if !js[bool](d, `[...document.querySelectorAll('#log-lines .log-line[data-msg="request"]')].every((l) => l.offsetParent === null)`) {
		t.Error("request lines show without Requests ticked")
	}
	d.do(chromedp.Click(chromedp.CSS("#log-requests")))
	d.call("GET", "/v1/sandboxes/live-log-probe", nil)
	d.waitFor("the request, live", `[...document.querySelectorAll('#log-lines .log-line[data-msg="request"]')].some((l) => l.offsetParent !== null && l.textContent.includes('/v1/sandboxes/live-log-probe') && l.textContent.includes('status=404'))`, 10*time.Second)
	if text := js[string](d, `document.querySelector('#log-lines').textContent`); strings.Contains(text, d.key) || strings.Contains(text, js[string](d, `localStorage.getItem('rtemu.apiKey')`)) {
		t.Error("the log shows an API key")
	}
	if !js[bool](d, `window.__sameDocument === true`) {
		t.Error("the page reloaded")
	}
}
