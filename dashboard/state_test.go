package dashboard_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/state"
)

// Save state downloads the archive; once a seed is loaded, Reset to seed
// (asked first) brings it back.
func TestStatePanel(t *testing.T) {
	t.Parallel()
	srv := emulatortest.New(t, emulatortest.WithFake())
	d := connect(t, srv)
	kept := d.create(map[string]any{"template": "base-ubuntu", "name": "kept"})
	d.apiStatus(kept, "running")
	d.openPage(openOpts{})
	d.live()
	d.waitFor("the seed row", `document.querySelector('#info-seed') !== null && document.querySelector('#reset-seed-button').hidden`, 10*time.Second)

	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(d.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
	}); err != nil {
		t.Fatal(err)
	}
	d.do(chromedp.Click(chromedp.CSS("#save-state-button")))
	d.waitFor("the toast", `document.querySelector('#toasts').textContent.includes('State saved')`, 20*time.Second)
	// The download is whole once it reads to its trailer (the browser
	// may show the file before it has written it all).
	var file string
	var m state.Manifest
	var readErr error
	testwait.Until(t, 20*time.Second, func() bool {
		ms, _ := filepath.Glob(filepath.Join(dir, "rtemu-state-*.tar"))
		if len(ms) != 1 {
			return false
		}
		f, err := os.Open(ms[0])
		if err != nil {
			return false
		}
		defer f.Close()
		file = ms[0]
		readErr = state.Read(f, state.Handler{Manifest: func(got state.Manifest) error { m = got; return nil }})
		return readErr == nil
	}, "no whole archive downloaded in %s", dir)
	if len(m.Sandboxes) != 1 || m.Sandboxes[0].ID != kept {
		t.Fatalf("the downloaded archive: %+v", m)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Loaded (the API), the page offers the reset to it.
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/_emulator/state", f)
	req.Header.Set("X-API-Key", srv.APIKey)
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("load: %v %v", resp, err)
	}
	resp.Body.Close()
	d.do(chromedp.Reload())
	d.live()
	d.waitFor("the Reset to seed button", `!document.querySelector('#reset-seed-button').hidden && document.querySelector('#info-seed').textContent.includes('1 sandbox,')`, 10*time.Second)
	extra := d.create(map[string]any{"template": "base-ubuntu", "name": "extra"})
	d.waitFor("the new row", row(extra)+` !== null`, 5*time.Second)

	d.do(chromedp.Click(chromedp.CSS("#reset-seed-button")))
	d.waitFor("the confirmation", `document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-title').textContent === 'Reset to the seed?'`, 5*time.Second)
	d.do(chromedp.KeyEvent(kb.Escape))
	d.waitFor("the confirmation to close", `!document.querySelector('#confirm-dialog').open`, 5*time.Second)
	d.apiStatus(extra, "running") // Cancel changed nothing
	d.do(chromedp.Click(chromedp.CSS("#reset-seed-button")))
	d.waitFor("the confirmation", `document.querySelector('#confirm-dialog').open`, 5*time.Second)
	d.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	var toasts []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		toast := js[string](d, `document.querySelector('#toasts').textContent`)
		if strings.Contains(toast, "Back to the seed: 1 sandbox") {
			break
		}
		if toast != "" && (len(toasts) == 0 || toasts[len(toasts)-1] != toast) {
			toasts = append(toasts, toast)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no toast of the reset in 20s; the toasts said %q; the dialog open: %v", toasts, js[bool](d, `document.querySelector('#confirm-dialog').open`))
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.waitFor("the seed's rows", row(extra)+` === null && `+row(kept)+` !== null`, 10*time.Second)
	if st, out := d.call("GET", "/v1/sandboxes/"+kept, nil); st != http.StatusOK || out["data"].(map[string]any)["status"] != "running" {
		t.Errorf("after the reset to the seed: %d %v", st, out)
	}
	if st, _ := d.call("GET", "/v1/sandboxes/"+extra, nil); st != http.StatusNotFound {
		t.Errorf("the sandbox made after the seed: %d", st)
	}
}
