package dashboard_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// The terminal's rows as the DOM renderer shows them (blanks are no-break
// spaces, which trim drops).
const termRows = `[...document.querySelectorAll('#terminal-screen .xterm-rows > div')].map((r) => r.textContent.trim())`

func termHas(line string) string {
	return fmt.Sprintf(`%s.includes(%q)`, termRows, line)
}

// typeIn types into the terminal (xterm's input is its hidden textarea).
// Enter is pressed as a person's key is: one keydown that carries its text,
// so that the keypress the browser would make follows only when the page
// lets it. (chromedp's SendKeys sends Enter's character as an event of its
// own, which xterm.js 3 takes as a second Enter: every command was followed
// by an empty one, and text typed meanwhile raced busybox sh's line editor.)
func (d *dash) typeIn(keys string) {
	d.t.Helper()
	const textarea = "#terminal-screen textarea"
	for i, part := range strings.Split(keys, kb.Enter) {
		if i > 0 {
			d.do(chromedp.Focus(chromedp.CSS(textarea)), pressEnter)
		}
		if part != "" {
			d.do(chromedp.SendKeys(chromedp.CSS(textarea), part))
		}
	}
}

// pressEnter presses and releases Enter on the focused element.
var pressEnter = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	key := input.DispatchKeyEventParams{
		Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
		WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Text: "\r", UnmodifiedText: "\r",
	}
	if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, key); err != nil {
		return err
	}
	key.Type, key.Text, key.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
	_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, key)
	return err
})

func (d *dash) termSize() (cols, rows int) {
	d.t.Helper()
	cols, _ = strconv.Atoi(js[string](d, `document.querySelector('#terminal-screen').dataset.cols`))
	rows, _ = strconv.Atoi(js[string](d, `document.querySelector('#terminal-screen').dataset.rows`))
	return cols, rows
}

// sttySees types stty size until the sandbox's TTY has the terminal's size:
// the engine applies a resize asynchronously (API 1.41), so a stty typed at
// once may still see the old one.
func (d *dash) sttySees(cols, rows int) {
	d.t.Helper()
	want := fmt.Sprintf("%d %d", rows, cols)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.typeIn("clear; stty size" + kb.Enter)
		seen := false
		for wait := time.Now().Add(3 * time.Second); time.Now().Before(wait) && !seen; time.Sleep(100 * time.Millisecond) {
			seen = js[bool](d, termHas(want))
		}
		if seen {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("stty size never said %s; screen %v", want, js[[]string](d, termRows))
		}
	}
}

// waitTerm is waitFor, showing the terminal's rows when it fails.
func (d *dash) waitTerm(what, cond string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !js[bool](d, cond) {
		if time.Now().After(deadline) {
			d.t.Fatalf("waited %v for %s (%s); the terminal shows:\n%s", timeout, what, cond, strings.Join(js[[]string](d, termRows), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSize waits until the terminal's size holds cond (a JavaScript
// expression of cols and rows).
func (d *dash) waitSize(what, cond string) (cols, rows int) {
	d.t.Helper()
	d.waitFor(what, fmt.Sprintf(`((s) => { const cols = Number(s.dataset.cols), rows = Number(s.dataset.rows); return %s; })(document.querySelector('#terminal-screen'))`, cond), 10*time.Second)
	return d.termSize()
}

// TestTerminalInTheBrowser: the selected sandbox's Terminal is xterm.js on a
// terminal session: keys reach the shell, colours show, the size follows
// the panel and reaches the sandbox's TTY, vi runs on the alternate screen,
// 10,000 lines scroll back, copy and paste work, and the terminal's own page
// fills the window.
func TestTerminalInTheBrowser(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	d := connect(t, emulatortest.New(t))
	id := d.create(map[string]any{"template": "base-ubuntu"})
	d.apiStatus(id, "running")
	d.openPage(openOpts{})
	d.live()
	d.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sandbox-rows tr[data-id=%q] [data-action="select"]`, id))))
	d.do(chromedp.Click(chromedp.CSS("#terminal-open")))
	d.waitFor("the terminal to connect", `document.querySelector('#terminal-status').textContent.includes('Connected')`, 30*time.Second)
	d.typeIn("echo hi" + kb.Enter)
	d.waitTerm("hi on the screen", termHas("hi"), 20*time.Second)
	cols0, rows0 := d.termSize()
	t.Logf("the panel's terminal: %d × %d", cols0, rows0)
	if cols0 < 40 || rows0 < 15 {
		t.Errorf("the panel's terminal is %d × %d; want at least 40 × 15", cols0, rows0)
	}
	d.sttySees(cols0, rows0)

	t.Run("red text is red", func(t *testing.T) {
		d := d.in(t)
		d.typeIn(`printf '\033[31mRED-TEXT\033[0m plain\n'` + kb.Enter)
		d.waitTerm("the red line", termHas("RED-TEXT plain"), 10*time.Second)
		got := js[[]string](d, `(() => {
  const row = [...document.querySelectorAll('#terminal-screen .xterm-rows > div')].find((r) => r.textContent.trim() === 'RED-TEXT plain');
  return [...row.querySelectorAll('span')].filter((s) => s.textContent.trim() !== '').map((s) => s.textContent + ' ' + s.className + ' ' + getComputedStyle(s).color);
})()`)
		if len(got) != len("RED-TEXTplain") {
			t.Fatalf("cells %q", got)
		}
		for i, cell := range got {
			red := i < len("RED-TEXT")
			if isRed := strings.Contains(cell, "xterm-fg-1 ") && strings.HasSuffix(cell, "rgb(204, 0, 0)"); isRed != red {
				t.Errorf("cell %d %q: red %v, want %v", i, cell, isRed, red)
			}
		}
	})

	t.Run("a smaller panel reaches stty", func(t *testing.T) {
		d := d.in(t)
		d.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#terminal-screen'); s.style.width = '300px'; s.style.height = '160px'; })()`))
		cols, rows := d.waitSize("a smaller terminal", `cols < 40 && rows < 10`)
		d.sttySees(cols, rows)
	})

	t.Run("widened again, lines are whole", func(t *testing.T) {
		// The hand-written terminal cut every line to the narrow width
		// once it had been narrowed.
		d := d.in(t)
		d.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#terminal-screen'); s.style.width = ''; s.style.height = ''; })()`))
		// (The panel may have gained a scrollbar meanwhile: a column or two less.)
		cols, rows := d.waitSize("the old size", fmt.Sprintf(`cols >= %d && rows === %d`, cols0-3, rows0))
		d.sttySees(cols, rows)
		n := cols - 2
		d.typeIn(fmt.Sprintf(`clear; head -c %d /dev/zero | tr '\0' w; echo`, n) + kb.Enter)
		d.waitTerm("a whole line", termHas(strings.Repeat("w", n)), 10*time.Second)
	})

	t.Run("wide: the panel takes the page", func(t *testing.T) {
		d := d.in(t)
		d.do(chromedp.Click(chromedp.CSS("#terminal-wide")))
		cols, rows := d.waitSize("a wide terminal", fmt.Sprintf(`cols > %d`, cols0*2))
		t.Logf("wide: %d × %d", cols, rows)
		d.sttySees(cols, rows)
		d.do(chromedp.Click(chromedp.CSS("#terminal-wide")))
		d.waitSize("the panel again", fmt.Sprintf(`cols >= %d && cols <= %d`, cols0-3, cols0))
	})

	t.Run("vi opens, edits and quits", func(t *testing.T) {
		d := d.in(t)
		d.typeIn("clear; echo before-vi" + kb.Enter)
		d.waitTerm("the marker", termHas("before-vi"), 10*time.Second)
		d.typeIn("vi /tmp/note" + kb.Enter)
		// The alternate screen: vi's empty lines, and the shell's gone.
		d.waitTerm("vi", fmt.Sprintf(`%s.filter((l) => l === '~').length > 3 && !%s`, termRows, termHas("before-vi")), 10*time.Second)
		d.typeIn("ihello-from-vi")
		d.waitTerm("insert mode", termRows+`.at(-1).startsWith('I ')`, 10*time.Second)
		// Escape, and the command once vi has taken it (vi reads an Escape
		// followed at once by more as one key sequence).
		d.typeIn(kb.Escape)
		d.waitTerm("command mode", termRows+`.at(-1).startsWith('- ')`, 10*time.Second)
		d.typeIn(":wq" + kb.Enter)
		// Back on the normal screen, as it was.
		d.waitTerm("the shell's screen again", termHas("before-vi")+` && !`+termRows+`.includes('~')`, 10*time.Second)
		if js[bool](d, `document.querySelector('#detail-body').hidden`) {
			t.Fatal("Escape in the terminal closed the details")
		}
		d.typeIn("cat /tmp/note" + kb.Enter)
		d.waitTerm("the file vi wrote", termHas("hello-from-vi"), 10*time.Second)
	})

	t.Run("10,000 lines scroll back", func(t *testing.T) {
		d := d.in(t)
		d.typeIn("seq 1 10000" + kb.Enter)
		// The last line, and the prompt after it: the output is all there.
		d.waitTerm("the last line", fmt.Sprintf(`((r) => { const i = r.indexOf('10000'); return i >= 0 && r.slice(i + 1).some((l) => l.startsWith('~ #')); })(%s)`, termRows), 20*time.Second)
		d.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#terminal-screen .xterm-viewport').scrollTop = 0`))
		// The top: 1, 2, 3, … (nothing lost), after the command.
		d.waitTerm("the first lines", fmt.Sprintf(`((r) => { const i = r.indexOf('1'); return i >= 0 && r[i + 1] === '2' && r[i + 2] === '3' && r.slice(0, i).every((l) => !/^\d+$/.test(l)); })(%s)`, termRows), 10*time.Second)
		d.do(chromedp.Evaluate[chromedp.Void](`(() => { const v = document.querySelector('#terminal-screen .xterm-viewport'); v.scrollTop = v.scrollHeight; })()`))
		d.waitTerm("the bottom again", termHas("10000"), 10*time.Second)
	})

	t.Run("paste and copy", func(t *testing.T) {
		d := d.in(t)
		d.typeIn("clear" + kb.Enter)
		// One Enter, one command: the screen is the prompt alone (pasted
		// text racing a second command lost its start in CI).
		d.waitTerm("the prompt on a clear screen", fmt.Sprintf(`((r) => r[0] === '~ #' && r.slice(1).every((l) => l === ''))(%s)`, termRows), 10*time.Second)
		js[any](d, `navigator.clipboard.writeText('echo pasted-$((2+3))\n').then(() => null)`)
		d.do(chromedp.Click(chromedp.CSS("#terminal-paste")))
		d.waitTerm("the pasted command's output", termHas("pasted-5"), 10*time.Second)
		// A triple click selects the line; Copy puts it on the clipboard.
		box := js[[]float64](d, `(() => {
  const row = [...document.querySelectorAll('#terminal-screen .xterm-rows > div')].find((r) => r.textContent.trim() === 'pasted-5');
  row.scrollIntoView({ block: 'center' });
  const r = row.querySelector('span').getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
})()`)
		d.do(chromedp.MouseClickXY(box[0], box[1], chromedp.ClickCount(3)))
		d.do(chromedp.Click(chromedp.CSS("#terminal-copy")))
		d.waitTerm("the line on the clipboard", `navigator.clipboard.readText().then((t) => t.trim() === 'pasted-5')`, 5*time.Second)
	})

	d.typeIn("exit 5" + kb.Enter)
	d.waitFor("the exit status", `document.querySelector('#terminal-status [data-exit-code]')?.dataset.exitCode === '5'`, 20*time.Second)

	t.Run("its own page fills the window", func(t *testing.T) {
		d := d.in(t)
		d.do(chromedp.Navigate(d.srv.URL + "/_emulator/dashboard/terminal.html#" + id))
		d.waitFor("the terminal to connect", `document.querySelector('#terminal-status').textContent.includes('Connected')`, 30*time.Second)
		cols, rows := d.termSize()
		if cols < 150 || rows < 40 {
			t.Errorf("the terminal's page is %d × %d in a 1440 × 900 window", cols, rows)
		}
		d.sttySees(cols, rows)
	})
}
