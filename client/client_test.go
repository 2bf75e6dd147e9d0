package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestExecStream: a streamed exec's chunks go to their writers as they
// come and its exit event ends it; an API that answers JSON instead is
// understood too; an error event is an error.
func TestExecStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ctype, body string
		stdout, stderr    string
		exit              int
		err               string
	}{
		{"events", "text/event-stream", ": keep-alive\n\nevent: stdout\ndata: {\"data\":\"one\\n\"}\n\nevent: stderr\ndata: {\"data\":\"two\\n\"}\n\n" +
			"event: exit\ndata: {\"exitCode\":3,\"timedOut\":false,\"durationMs\":5}\n\n", "one\n", "two\n", 3, ""},
		{"json", "application/json", `{"data":{"stdout":"a","stderr":"b","exitCode":4},"meta":{"requestId":"req_1"}}`, "a", "b", 4, ""},
		{"error event", "text/event-stream", "event: stdout\ndata: {\"data\":\"x\"}\n\nevent: error\ndata: {\"code\":\"not_found\",\"message\":\"Sandbox not found\"}\n\n",
			"x", "", 0, "Sandbox not found (not_found)"},
		{"cut short", "text/event-stream", "event: stdout\ndata: {\"data\":\"x\"}\n\n", "x", "", 0, "without the command's exit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/sandboxes/sb/exec" || r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("X-API-Key") != "k" {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", tt.ctype)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			var stdout, stderr strings.Builder
			r, err := New(srv.URL+"/v1", "k", nil).ExecStream(context.Background(), "sb", Exec{Command: "x"}, &stdout, &stderr)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
			} else if err != nil || r.ExitCode != tt.exit {
				t.Fatalf("result %+v, %v", r, err)
			}
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

// TestErrors: an API error answer becomes an *Error with its code, and a
// 404 is IsNotFound.
func TestErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"Sandbox not found","requestId":"req_9"}}`))
	}))
	defer srv.Close()
	_, err := New(srv.URL, "k", nil).GetSandbox(context.Background(), "nope")
	e, ok := err.(*Error)
	if !ok || e.Code != "not_found" || e.RequestID != "req_9" || !IsNotFound(err) || err.Error() != "Sandbox not found (404 not_found)" {
		t.Fatalf("%#v", err)
	}
}
