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
	// DataDir and SSHAddr are shown by the dashboard (/_emulator/info).
	DataDir string
	SSHAddr string
	// StopStreams, closed when rtemu shuts down, ends long-lived answers
	// (the dashboard's event stream): http.Server.Shutdown waits for them.
	StopStreams <-chan struct{}
}

type api struct {
	svc     *sandbox.Service
	version string
	log     *slog.Logger
	// for the dashboard
	dataDir, sshAddr, authMode string
	stopStreams                <-chan struct{}
}

// New returns the API as an http.Handler.
func New(cfg Config) http.Handler {
	a := &api{svc: cfg.Service, version: cfg.Version, log: cfg.Logger,
		dataDir: cfg.DataDir, sshAddr: cfg.SSHAddr, authMode: authMode(cfg), stopStreams: cfg.StopStreams}
	if a.log == nil {
		a.log = slog.Default()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.handleError
	e.Use(requestID, a.logRequests, limitBody(maxBody), authenticate(cfg.APIKeys, cfg.AuthOff))
	a.routes(e)
	return e
}

// routes registers the whole API surface, top to bottom.
func (a *api) routes(e *echo.Echo) {
	e.GET("/health", a.health)

	v1 := e.Group("/v1")
	v1.GET("/templates", a.listTemplates)

	v1.POST("/sandboxes", a.createSandbox)
	v1.GET("/sandboxes", a.listSandboxes)
	v1.GET("/sandboxes/:id", a.getSandbox)
	v1.PATCH("/sandboxes/:id", a.updateSandbox)
	v1.DELETE("/sandboxes/:id", a.deleteSandbox)
	v1.POST("/sandboxes/:id/pause", a.pauseSandbox)
	v1.POST("/sandboxes/:id/resume", a.resumeSandbox)
	v1.POST("/sandboxes/:id/exec", a.exec)

	// Emulator-only: the dashboard, its live feed and rtemu's own state.
	e.Match(getHead, "/", a.dashboardPage)
	e.Match(getHead, dashboardAssets+"*", a.dashboardAsset)
	e.GET(eventsPath, a.events)
	e.GET("/_emulator/info", a.info)

	// Upstream endpoints this build does not serve yet answer 501, naming
	// the operation, rather than a bare 404.
	for _, r := range notImplemented {
		e.Add(r.method, r.path, notImplementedHandler(r.operation))
	}
}

var notImplemented = []struct{ method, path, operation string }{
	{http.MethodGet, "/v1/sandboxes/:id/url", "sandbox dev URLs"},
	{http.MethodGet, "/v1/sandboxes/:id/ssh", "sandbox SSH connection info"},
	{http.MethodGet, "/v1/sandboxes/:id/vnc", "sandbox VNC connection info"},
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
