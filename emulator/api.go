// Package emulator is rtemu's HTTP front door: the Runtools REST API on Echo.
// Handlers parse and validate the wire format, call the lifecycle service,
// and write the envelope; errors are mapped to the contract's envelope in one
// place (errors.go).
package emulator

import (
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// Config configures the HTTP API.
type Config struct {
	Service *sandbox.Service
	Version string
	// APIKeys, when set, is strict mode: only these keys are accepted.
	APIKeys []string
	// AuthOff accepts requests with any key or none.
	AuthOff bool
	Logger  *slog.Logger
	// PortURLs makes the desktop's URL (GET /v1/sandboxes/{id}/vnc,
	// vncUrl); nil leaves the desktop without one.
	PortURLs PortURLs
}

type api struct {
	svc     *sandbox.Service
	version string
	log     *slog.Logger
	gate    *gate
	// portURLs makes the desktop's URL through the dev-URL proxy.
	portURLs PortURLs
}

// New returns the API as an http.Handler.
func New(cfg Config) http.Handler {
	a := &api{svc: cfg.Service, version: cfg.Version, log: cfg.Logger, gate: newGate(), portURLs: cfg.PortURLs}
	if a.log == nil {
		a.log = slog.Default()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.handleError
	e.Use(requestID, a.versionHeader, a.logRequests, limitBody(maxBody), authenticate(cfg.APIKeys, cfg.AuthOff))
	for _, r := range a.routes() {
		mw := []echo.MiddlewareFunc{operation(r.op)}
		if !r.control {
			mw = append(mw, a.gate.shared, a.injectFaults)
		}
		e.Add(r.method, r.path, r.handler, mw...)
	}
	return e
}

// route is one endpoint. op names it for fault injection (sandbox.create,
// …); control marks rtemu's own endpoints, which faults and the reset gate
// leave alone.
type route struct {
	method, path, op string
	handler          echo.HandlerFunc
	control          bool
}

// routes is the whole API surface, top to bottom.
func (a *api) routes() []route {
	rs := []route{
		{http.MethodGet, "/health", "health", a.health, true},
		{http.MethodGet, "/v1/templates", "template.list", a.listTemplates, false},

		{http.MethodPost, "/v1/sandboxes", "sandbox.create", a.createSandbox, false},
		{http.MethodGet, "/v1/sandboxes", "sandbox.list", a.listSandboxes, false},
		{http.MethodGet, "/v1/sandboxes/:id", "sandbox.get", a.getSandbox, false},
		{http.MethodPatch, "/v1/sandboxes/:id", "sandbox.update", a.updateSandbox, false},
		{http.MethodDelete, "/v1/sandboxes/:id", "sandbox.delete", a.deleteSandbox, false},
		{http.MethodPost, "/v1/sandboxes/:id/pause", "sandbox.pause", a.pauseSandbox, false},
		{http.MethodPost, "/v1/sandboxes/:id/resume", "sandbox.resume", a.resumeSandbox, false},
		{http.MethodPost, "/v1/sandboxes/:id/exec", "sandbox.exec", a.exec, false},
		{http.MethodGet, "/v1/sandboxes/:id/vnc", "sandbox.vnc", a.vnc, false},

		{http.MethodPost, "/_emulator/reset", "emulator.reset", a.reset, true},
		{http.MethodGet, "/_emulator/faults", "emulator.faults.list", a.listFaults, true},
		{http.MethodPost, "/_emulator/faults", "emulator.faults.arm", a.armFault, true},
		{http.MethodDelete, "/_emulator/faults", "emulator.faults.clear", a.clearFaults, true},
		{http.MethodGet, "/_emulator/operations", "emulator.operations", a.listOperations, true},
	}
	// Upstream endpoints this build does not serve answer 501, naming the
	// operation, rather than a bare 404.
	for _, r := range notImplemented {
		rs = append(rs, route{r.method, r.path, "unimplemented", notImplementedHandler(r.operation), true})
	}
	return rs
}

// operations lists the operation names faults can be armed for.
func (a *api) operations() []string {
	var ops []string
	for _, r := range a.routes() {
		if !r.control {
			ops = append(ops, r.op)
		}
	}
	return ops
}

var notImplemented = []struct{ method, path, operation string }{
	{http.MethodGet, "/v1/sandboxes/:id/url", "sandbox dev URLs"},
	{http.MethodGet, "/v1/sandboxes/:id/ssh", "sandbox SSH connection info"},
	{http.MethodGet, "/v1/sandboxes/:id/stats", "sandbox stats"},
	{http.MethodGet, "/v1/sandboxes/:id/activity", "sandbox activity"},
	{http.MethodGet, "/v1/ssh-keys", "SSH keys"},
	{http.MethodPost, "/v1/ssh-keys", "SSH keys"},
	{http.MethodDelete, "/v1/ssh-keys/:id", "SSH keys"},
	{http.MethodGet, "/v1/workspaces", "workspaces"},
	{http.MethodPost, "/v1/workspaces", "workspaces"},
	{http.MethodGet, "/v1/workspaces/*", "workspaces"},
	{http.MethodPost, "/v1/workspaces/*", "workspaces"},
	{http.MethodPut, "/v1/workspaces/*", "workspaces"},
	{http.MethodPatch, "/v1/workspaces/*", "workspaces"},
	{http.MethodDelete, "/v1/workspaces/*", "workspaces"},
	{http.MethodPost, "/v1/terminal/sandbox-sessions", "browser terminal sessions"},
	{http.MethodGet, "/v1/projects", "projects"},
	{http.MethodPost, "/v1/execute", "stateless code execution (/v1/execute)"},
}

func notImplementedHandler(op string) echo.HandlerFunc {
	return func(c echo.Context) error {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented",
			message: "rtemu does not implement " + op + " (" + c.Request().Method + " " + c.Path() + ") yet"}
	}
}
