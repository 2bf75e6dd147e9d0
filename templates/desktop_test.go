package templates_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testtool"
)

// api is a small client of a test rtemu.
type api struct {
	t   *testing.T
	srv *emulatortest.Server
}

func (a api) do(method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.srv.URL+path, rd)
	req.Header.Set("X-API-Key", a.srv.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env struct {
		Data  map[string]any `json:"data"`
		Error map[string]any `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		a.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if env.Error != nil {
		return resp.StatusCode, env.Error
	}
	return resp.StatusCode, env.Data
}

func (a api) must(method, path string, body any) map[string]any {
	a.t.Helper()
	code, data := a.do(method, path, body)
	if code/100 != 2 {
		a.t.Fatalf("%s %s: %d %v", method, path, code, data)
	}
	return data
}

// until polls a sandbox until ok says yes.
func (a api) until(id string, within time.Duration, what string, ok func(map[string]any) bool) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(within)
	var last map[string]any
	for time.Now().Before(deadline) {
		last = a.must("GET", "/v1/sandboxes/"+id, nil)
		if last["status"] == "failed" {
			a.t.Fatalf("sandbox %s failed: %v", id, last["error"])
		}
		if ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.t.Fatalf("sandbox %s: %s did not happen within %v; last %v", id, what, within, last)
	return nil
}

func (a api) sh(id, cmd string) string {
	a.t.Helper()
	res := a.must("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": cmd, "timeout": 60000})
	if res["exitCode"] != float64(0) {
		a.t.Fatalf("%q: exit %v\nstdout %v\nstderr %v", cmd, res["exitCode"], res["stdout"], res["stderr"])
	}
	return res["stdout"].(string)
}

func status(want string) func(map[string]any) bool {
	return func(sb map[string]any) bool { return sb["status"] == want }
}

// TestBaseUbuntu: a base-ubuntu sandbox has the tools the hosted one has
// (but Bun, which cannot be fetched offline).
func TestBaseUbuntu(t *testing.T) {
	baseUbuntu, _ := templateImages(t)
	t.Parallel()
	a := api{t, emulatortest.New(t, emulatortest.WithTemplate("base-ubuntu", baseUbuntu))}
	id := a.must("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})["id"].(string)
	a.until(id, time.Minute, "running", status("running"))
	for _, cmd := range []string{
		"node --version", "npm --version", "python3 --version", "pip3 --version", "git --version",
		"curl --version", "wget --version", "gcc --version", "make --version", "ps -e",
		"test -s /etc/ssl/certs/ca-certificates.crt",
		// Compiles and runs: the toolchain is whole.
		`printf 'int main(){return 0;}' > /tmp/t.c && cc /tmp/t.c -o /tmp/t && /tmp/t`,
		`node -e 'console.log(require("os").platform())' | grep -q linux`,
	} {
		t.Run(strings.Fields(cmd)[0], func(t *testing.T) { api{t, a.srv}.sh(id, cmd) })
	}
}

// TestDesktop drives the desktop end to end: created from the template,
// the desktop starts by itself; vncReady turns true; a headless Chromium
// opens vncUrl (through rtemu's proxy, WebSocket included), noVNC connects
// and the desktop is drawn; xdotool and scrot work through exec; the open
// connection counts as activity; pause and resume keep the desktop as it
// was. RTEMU_DESKTOP_SCREENSHOT=FILE saves what the browser shows.
func TestDesktop(t *testing.T) {
	baseUbuntu, desktopUbuntu := templateImages(t)
	t.Parallel()
	chromium := testtool.Chromium(t)
	srv := emulatortest.New(t, emulatortest.WithTemplate("base-ubuntu", baseUbuntu),
		emulatortest.WithTemplate("desktop-ubuntu", desktopUbuntu))
	a := api{t, srv}
	created := time.Now()
	id := a.must("POST", "/v1/sandboxes", map[string]any{"template": "desktop-ubuntu"})["id"].(string)
	sb := a.until(id, 2*time.Minute, "vncReady", func(sb map[string]any) bool { return sb["vncReady"] == true })
	t.Logf("desktop ready %v after create", time.Since(created).Round(100*time.Millisecond))
	vnc := a.must("GET", "/v1/sandboxes/"+id+"/vnc", nil)
	if vnc["url"] != sb["vncUrl"] || vnc["url"] == nil {
		t.Fatalf("vnc %v, vncUrl %v", vnc, sb["vncUrl"])
	}

	// Computer-use tools, through exec.
	if got := a.sh(id, "DISPLAY=:1 xdotool mousemove 321 123 && DISPLAY=:1 xdotool getmouselocation"); !strings.HasPrefix(got, "x:321 y:123 ") {
		t.Errorf("xdotool getmouselocation: %q", got)
	}
	if got := a.sh(id, "DISPLAY=:1 scrot -o /tmp/shot.png && identify -format '%w %h' /tmp/shot.png"); got != "1280 800" {
		t.Errorf("scrot: %q", got)
	}
	a.sh(id, "firefox-esr --version")
	// A window to find again after pause and resume, and a browser page
	// for the screenshot.
	a.sh(id, `cat > /tmp/hello.html <<'HTML'
<!doctype html><title>rtemu desktop</title><body style="font:28px sans-serif;padding:2em">
<h1>Hello from desktop-ubuntu</h1><p>Firefox ESR in XFCE, served by noVNC through rtemu.</p>
HTML
DISPLAY=:1 setsid -f xfce4-terminal --title rtemu-marker --geometry 80x20+60+420 >/dev/null 2>&1
DISPLAY=:1 setsid -f firefox-esr --new-instance --width 900 --height 560 file:///tmp/hello.html >/dev/null 2>&1`)
	marker := strings.TrimSpace(waitOutput(t, a, id, "DISPLAY=:1 xdotool search --name rtemu-marker", 30*time.Second))
	waitOutput(t, a, id, "DISPLAY=:1 xdotool search --name 'rtemu desktop'", 60*time.Second)
	xpid := a.sh(id, "pgrep -x Xtigervnc")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 860))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	// What the page says goes into the test's log: a client that does not
	// connect says why there.
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			t.Logf("browser console: %s", m.String())
		}
	}()
	// Chromium resolves *.localhost to loopback by itself.
	openNoVNC(t, a, id, bctx, vnc["url"].(string))
	waitConnected(t, bctx)
	shot := waitDrawn(t, bctx)
	if p := os.Getenv("RTEMU_DESKTOP_SCREENSHOT"); p != "" {
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Error(err)
		}
	}
	// The open WebSocket is a use of the sandbox: it is not idle.
	if _, idle := srv.Service().Idle(id, time.Now()); idle {
		t.Error("a sandbox with an open VNC connection counts as idle")
	}

	// Pause and resume: the same X server, the same windows.
	a.must("POST", "/v1/sandboxes/"+id+"/pause", nil)
	paused := a.until(id, 30*time.Second, "paused", status("paused"))
	if paused["vncReady"] != false {
		t.Error("a paused desktop says vncReady")
	}
	a.must("POST", "/v1/sandboxes/"+id+"/resume", nil)
	a.until(id, 30*time.Second, "ready again", func(sb map[string]any) bool { return sb["status"] == "running" && sb["vncReady"] == true })
	if got := a.sh(id, "pgrep -x Xtigervnc"); got != xpid {
		t.Errorf("the X server changed across pause/resume: %q then %q", xpid, got)
	}
	if got := strings.TrimSpace(a.sh(id, "DISPLAY=:1 xdotool search --name rtemu-marker")); got != marker {
		t.Errorf("the marker window was %q before pause, %q after resume", marker, got)
	}
	// The browser's connection lived through it.
	waitConnected(t, bctx)
	waitDrawn(t, bctx)
}

// openNoVNC loads noVNC's page and waits for it to connect, loading it again
// as a user would reload, at most openTries times. Chromium aborts a load,
// of the page or of any of its scripts, with net::ERR_NETWORK_CHANGED when
// the host's network interfaces change, and Docker adds and removes one for
// every container that starts or stops on the machine (other tests'
// included): the page then stays "loading" (dashboard/navigate_test.go
// retries its loads the same way). The same was seen on the first container
// of a freshly built image (cold caches) with no request failed.
func openNoVNC(t *testing.T, a api, id string, ctx context.Context, url string) {
	t.Helper()
	for try := 1; ; try++ {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(lctx, chromedp.Navigate(url))
		cancel()
		if err != nil && !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			t.Fatalf("open %s: %v", url, err)
		}
		if err == nil && connected(ctx, 30*time.Second) {
			return
		}
		if try == openTries {
			break
		}
		t.Logf("noVNC not connected (load %d: %v); websockify's log:\n%s", try, err, a.sh(id, "tail -n 40 /var/log/rtemu-desktop/websockify.log"))
	}
	waitConnected(t, ctx)
}

const openTries = 4

// waitOutput runs cmd until it succeeds with output.
func waitOutput(t *testing.T, a api, id, cmd string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		res := a.must("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": cmd})
		if res["exitCode"] == float64(0) && strings.TrimSpace(res["stdout"].(string)) != "" {
			return res["stdout"].(string)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%q gave nothing within %v", cmd, within)
	return ""
}

// connected waits up to within for noVNC to say it is connected (it marks
// the page with the noVNC_connected class).
func connected(ctx context.Context, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.className`))
		if err == nil && strings.Contains(state, "noVNC_connected") {
			return true
		}
		time.Sleep(250 * time.Millisecond)
	}
	return false
}

func waitConnected(t *testing.T, ctx context.Context) {
	t.Helper()
	if !connected(ctx, 60*time.Second) {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.className`))
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("noVNC did not connect: page %s, state %q", loc, state)
	}
}

// waitDrawn screenshots the page until the desktop shows (not one flat
// colour) and returns the PNG.
func waitDrawn(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var shot []byte
	var why string
	for time.Now().Before(deadline) {
		var err error
		if shot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
			why = err.Error()
		} else if why = blank(shot); why == "" {
			return shot
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the desktop was not drawn: %s", why)
	return nil
}

// blank says why a screenshot is not a drawn desktop ("" when it is one):
// a blank or single-colour page has few colours, a desktop with a panel,
// icons, text and windows has hundreds.
func blank(shot []byte) string {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return err.Error()
	}
	colours := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	top := 0
	for _, n := range colours {
		top = max(top, n)
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if len(colours) < 64 || top > total*9/10 {
		return fmt.Sprintf("%d colours, the commonest covers %d%% of %v", len(colours), top*100/max(total, 1), b.Size())
	}
	return ""
}
