package emulator

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// TestPanicIsAnInternalError: a handler that panics answers 500 in the
// envelope, and the API keeps serving.
func TestPanicIsAnInternalError(t *testing.T) {
	t.Parallel()
	a := &api{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := echo.New()
	e.HTTPErrorHandler = a.handleError
	e.Use(requestID, recoverPanics)
	e.GET("/boom", func(echo.Context) error { panic("boom") })
	e.GET("/fine", func(c echo.Context) error { return c.String(http.StatusOK, "fine") })
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{{"/boom", 500, `"code":"internal_error"`}, {"/fine", 200, "fine"}} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %s", tc.path, rec.Code, rec.Body.String())
		}
	}
}

// The REST API words the service's remedies as its routes.
func TestRemediesWordedAsRoutes(t *testing.T) {
	t.Parallel()
	a := &api{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := echo.New()
	e.HTTPErrorHandler = a.handleError
	e.Use(requestID)
	e.GET("/paused", func(echo.Context) error {
		return &sandbox.Error{Kind: sandbox.KindConflict, Message: "sandbox sandbox-abc is paused; resume it first",
			Remedy: sandbox.RemedyResume, Subject: "sandbox-abc"}
	})
	e.GET("/nokey", func(echo.Context) error {
		return &sandbox.Error{Kind: sandbox.KindInvalid, Message: "invalid request", Details: []sandbox.FieldError{
			{Field: "sshKeys[0]", Message: "SSH key k not found", Remedy: sandbox.RemedyRegisterSSHKey}}}
	})
	for _, tc := range []struct{ path, body string }{
		{"/paused", `resume it first (POST /v1/sandboxes/sandbox-abc/resume)`},
		{"/nokey", `SSH key k not found (register it with POST /v1/ssh-keys, or give the public key itself)`},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %s; want %s", tc.path, rec.Code, rec.Body.String(), tc.body)
		}
	}
}

// An engine that does not answer is 503 docker_unavailable on Docker and
// engine_unavailable on any other engine (the contract's codes).
func TestUnavailableNamesTheEngine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, code string }{
		{"docker", `"code":"docker_unavailable"`}, {"kubernetes", `"code":"engine_unavailable"`}, {"fake", `"code":"engine_unavailable"`},
	} {
		a := &api{log: slog.New(slog.NewTextHandler(io.Discard, nil)), engineKind: tc.kind}
		e := echo.New()
		e.HTTPErrorHandler = a.handleError
		e.Use(requestID)
		e.GET("/down", func(echo.Context) error {
			return &sandbox.Error{Kind: sandbox.KindUnavailable, Message: "the engine does not answer"}
		})
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/down", nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), tc.code) {
			t.Errorf("%s: %d %s, want 503 and %s", tc.kind, rec.Code, rec.Body.String(), tc.code)
		}
	}
}
