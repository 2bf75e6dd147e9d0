package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsDial opens a terminal session's WebSocket with a real client.
func wsDial(t *testing.T, base, wsPath string) *websocket.Conn {
	t.Helper()
	u, _ := url.Parse(base)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+u.Host+wsPath, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		t.Fatalf("dial %s: %v", wsPath, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// terminalReader collects a terminal's output, its exit message and the
// close frame's code and reason.
type terminalReader struct {
	out    chan string
	exit   chan map[string]any
	texts  []string // the text messages, read once out is closed
	closed websocket.CloseError
}

func readTerminal(ctx context.Context, ws *websocket.Conn) *terminalReader {
	r := &terminalReader{out: make(chan string, 256), exit: make(chan map[string]any, 1)}
	go func() {
		defer close(r.out)
		for {
			kind, data, err := ws.Read(ctx)
			if err != nil {
				errors.As(err, &r.closed)
				return
			}
			if kind == websocket.MessageText {
				r.texts = append(r.texts, string(data))
				var m map[string]any
				if json.Unmarshal(data, &m) == nil && m["type"] == "exit" {
					r.exit <- m
				}
				continue
			}
			r.out <- string(data)
		}
	}()
	return r
}

// waitFor reads output until it contains want, failing after a deadline.
func (r *terminalReader) waitFor(t *testing.T, want string) string {
	t.Helper()
	var seen strings.Builder
	deadline := time.After(30 * time.Second)
	for !strings.Contains(seen.String(), want) {
		select {
		case s, ok := <-r.out:
			if !ok {
				t.Fatalf("terminal ended before %q; output %q", want, seen.String())
			}
			seen.WriteString(s)
		case <-deadline:
			t.Fatalf("no %q in 30 s; output %q", want, seen.String())
		}
	}
	return seen.String()
}

// end waits for the connection to close and returns its text messages and
// the close frame's code and reason.
func (r *terminalReader) end(t *testing.T) ([]string, int, string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-r.out:
			if !ok {
				return r.texts, int(r.closed.Code), r.closed.Reason
			}
		case <-deadline:
			t.Fatal("the connection did not close in 30 s")
		}
	}
}

func sendText(t *testing.T, ws *websocket.Conn, m map[string]any) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := ws.Write(t.Context(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// closeOf opens a session's WebSocket and returns the server's messages up
// to its close, with the close frame's code and reason.
func closeOf(t *testing.T, base, wsPath string) (texts []string, closeCode int, reason string) {
	t.Helper()
	return readTerminal(t.Context(), wsDial(t, base, wsPath)).end(t)
}

// TestTerminalSessions: a minted session opens a PTY login shell over a
// WebSocket: keys in, screen out, a resize that stty sees, the exit status
// at the end; the session is one-time.
func TestTerminalSessions(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	// Created and used at once: the terminal waits for the sandbox.
	id := c.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}).Data()["id"].(string)
	ts := c.must(http.StatusCreated, "POST", "/v1/terminal/sandbox-sessions", map[string]any{"sandboxId": id}).Data()
	sid, _ := ts["sessionId"].(string)
	if len(sid) != 36 || ts["sandboxId"] != id || ts["wsPath"] != "/v1/terminal/sessions/"+sid {
		t.Fatalf("session %v", ts)
	}
	if exp, err := time.Parse(time.RFC3339, ts["expiresAt"].(string)); err != nil || !exp.After(time.Now()) {
		t.Fatalf("expiresAt %v", ts["expiresAt"])
	}

	ws := wsDial(t, c.srv.URL, ts["wsPath"].(string)+"?cols=90&rows=20")
	term := readTerminal(t.Context(), ws)
	if err := ws.Write(t.Context(), websocket.MessageBinary, []byte("stty size\r")); err != nil {
		t.Fatal(err)
	}
	term.waitFor(t, "20 90")
	sendText(t, ws, map[string]any{"type": "input", "data": "echo hi\r"})
	term.waitFor(t, "\nhi\r\n")
	sendText(t, ws, map[string]any{"type": "resize", "cols": 132, "rows": 43})
	// The resize reaches the terminal asynchronously; ask until it shows.
	deadline := time.Now().Add(20 * time.Second)
	for got := ""; !strings.Contains(got, "43 132"); {
		if time.Now().After(deadline) {
			t.Fatalf("stty never saw the resize: %q", got)
		}
		sendText(t, ws, map[string]any{"type": "input", "data": "stty size\r"})
		select {
		case s := <-term.out:
			got += s
		case <-time.After(time.Second):
		}
	}
	sendText(t, ws, map[string]any{"type": "input", "data": "exit 3\r"})
	select {
	case m := <-term.exit:
		if m["exitCode"] != float64(3) {
			t.Errorf("exit message %v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit message")
	}

	// Newest first: closed, then opened (a running event may fall between:
	// it is written just after the sandbox is seen running).
	evs := eventTypes(c.activity(id))
	closed, opened := slices.Index(evs, "terminal.closed"), slices.Index(evs, "terminal.opened")
	if closed < 0 || opened < closed {
		t.Errorf("feed %v", evs)
	}

	t.Run("a session is one-time", func(t *testing.T) {
		texts, code, reason := closeOf(t, c.srv.URL, "/v1/terminal/sessions/"+sid)
		if code != 4409 || !strings.Contains(reason, "already used") || len(texts) != 1 || !strings.Contains(texts[0], "already used") {
			t.Errorf("second use: close %d %q, messages %v", code, reason, texts)
		}
	})
	t.Run("an unknown session is refused", func(t *testing.T) {
		_, code, reason := closeOf(t, c.srv.URL, "/v1/terminal/sessions/0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b")
		if code != 4404 || !strings.Contains(reason, "not found") {
			t.Errorf("unknown session: close %d %q", code, reason)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			method string
			path   string
			body   any
			status int
		}{
			{"no sandboxId", "POST", "/v1/terminal/sandbox-sessions", map[string]any{}, 400},
			{"sandboxId wrong type", "POST", "/v1/terminal/sandbox-sessions", `{"sandboxId":5}`, 400},
			{"unknown sandbox", "POST", "/v1/terminal/sandbox-sessions", map[string]any{"sandboxId": "sandbox-000000000000"}, 404},
			{"not a WebSocket", "GET", "/v1/terminal/sessions/" + sid, nil, 400},
		} {
			if r := c.do(tc.method, tc.path, tc.body); r.Status != tc.status {
				t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
			}
		}
		c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
		if r := c.do("POST", "/v1/terminal/sandbox-sessions", map[string]any{"sandboxId": id}); r.Status != http.StatusConflict {
			t.Errorf("session for a destroyed sandbox: %d %s", r.Status, r.Body)
		}
	})
}
