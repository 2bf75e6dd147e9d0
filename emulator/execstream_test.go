package emulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// TestExecStream streams a command's output as it comes.
func TestExecStream(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(nil)["id"].(string)

	t.Run("chunks before the end", func(t *testing.T) {
		resp, events, _ := c.streamExec(id, map[string]any{"command": "echo one; echo oops >&2; sleep 2; echo two"})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		var got []sseEvent
		for ev := range events {
			got = append(got, ev)
		}
		var out, errOut strings.Builder
		var first, exit *sseEvent
		for i, ev := range got {
			var d map[string]any
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
				t.Fatalf("event %q data %q: %v", ev.Event, ev.Data, err)
			}
			switch ev.Event {
			case "stdout":
				if first == nil {
					first = &got[i]
				}
				out.WriteString(d["data"].(string))
			case "stderr":
				errOut.WriteString(d["data"].(string))
			case "exit":
				exit = &got[i]
				if d["exitCode"] != float64(0) || d["timedOut"] != false || d["durationMs"].(float64) < 2000 {
					t.Errorf("exit %v", d)
				}
			default:
				t.Errorf("unexpected event %+v", ev)
			}
		}
		if out.String() != "one\ntwo\n" || errOut.String() != "oops\n" {
			t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
		}
		if first == nil || exit == nil || exit != &got[len(got)-1] {
			t.Fatalf("events %+v", got)
		}
		// The command sleeps 2 s after its first line: that line must have
		// come before the end.
		if exit.At-first.At < 1500*time.Millisecond {
			t.Errorf("first chunk at %v, exit at %v: output was held back", first.At, exit.At)
		}
	})

	t.Run("exit code, timeout and split UTF-8", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			body    map[string]any
			stdout  string
			code    float64
			timeout bool
		}{
			{"exit code", map[string]any{"command": "echo bye; exit 3"}, "bye\n", 3, false},
			{"timeout", map[string]any{"command": "echo start; sleep 30", "timeout": 700}, "start\n", 124, true},
			// é is c3 a9; its halves arrive in two writes.
			{"split rune", map[string]any{"command": `printf '\303'; sleep 0.3; printf '\251\n'`}, "é\n", 0, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, events, _ := c.streamExec(id, tc.body)
				var out strings.Builder
				var exit map[string]any
				for ev := range events {
					var d map[string]any
					_ = json.Unmarshal([]byte(ev.Data), &d)
					switch ev.Event {
					case "stdout":
						out.WriteString(d["data"].(string))
					case "exit":
						exit = d
					}
				}
				if out.String() != tc.stdout || exit == nil || exit["exitCode"] != tc.code || exit["timedOut"] != tc.timeout {
					t.Errorf("stdout %q exit %v", out.String(), exit)
				}
			})
		}
	})

	t.Run("errors before the start are JSON", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			body       any
			status     int
			code       string
		}{
			{"no command", "/v1/sandboxes/" + id + "/exec", map[string]any{}, 400, "bad_request"},
			{"unknown sandbox", "/v1/sandboxes/sandbox-000000000000/exec", map[string]any{"command": "true"}, 404, "not_found"},
		} {
			r := c.do("POST", tc.path, tc.body, "Accept", "text/event-stream")
			if r.Status != tc.status || r.ErrCode() != tc.code {
				t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
			}
		}
		c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
		r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"}, "Accept", "text/event-stream")
		if r.Status != 409 || !strings.Contains(string(r.Body), "resume") {
			t.Errorf("paused: %d %s", r.Status, r.Body)
		}
		c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/resume", nil)
		c.waitStatus(id, "running")
	})

	t.Run("disconnect ends the command", func(t *testing.T) {
		_, events, cancel := c.streamExec(id, map[string]any{"command": "echo started; sleep 3141", "timeout": 600000})
		if ev := next(t, events, 10*time.Second); ev.Event != "stdout" {
			t.Fatalf("first event %+v", ev)
		}
		if ps := c.sh(id, "ps"); !strings.Contains(ps, "sleep 3141") {
			t.Fatalf("the command is not running:\n%s", ps)
		}
		cancel()
		testwait.Until(t, 15*time.Second, func() bool { return !strings.Contains(c.sh(id, "ps"), "sleep 3141") },
			"the command still runs after its client went away")
		// The feed is written once the engine call returns, moments after
		// the kill.
		testwait.Check(t, 15*time.Second, func() error {
			evs := c.activity(id)
			for _, e := range evs {
				if e["eventType"] == "exec" && e["attributes"].(map[string]any)["cancelled"] == true {
					return nil
				}
			}
			return fmt.Errorf("no cancelled exec in the feed: %v", eventTypes(evs))
		})
	})
}
