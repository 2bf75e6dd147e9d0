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
	// SSH is the SSH gateway, for sshReady and GET /v1/sandboxes/{id}/ssh;
	// nil when there is none.
	SSH SSHGateway
}

type api struct {
	svc     *sandbox.Service
	version string
	log     *slog.Logger
	ssh     SSHGateway
}

// New returns the API as an http.Handler.
func New(cfg Config) http.Handler {
	a := &api{svc: cfg.Service, version: cfg.Version, log: cfg.Logger, ssh: cfg.SSH}
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
	v1.GET("/sandboxes/:id/ssh", a.sandboxSSH)

	v1.POST("/ssh-keys", a.createSSHKey)
	v1.GET("/ssh-keys", a.listSSHKeys)
	v1.DELETE("/ssh-keys/:id", a.deleteSSHKey)

	// Upstream endpoints this build does not serve yet answer 501, naming
	// the operation, rather than a bare 404.
	for _, r := range notImplemented {
		e.Add(r.method, r.path, notImplementedHandler(r.operation))
	}
}

var notImplemented = []struct{ method, path, operation string }{
	{http.MethodGet, "/v1/sandboxes/:id/url", "sandbox dev URLs"},
	{http.MethodGet, "/v1/sandboxes/:id/vnc", "sandbox VNC connection info"},
	{http.MethodGet, "/v1/sandboxes/:id/stats", "sandbox stats"},
	{http.MethodGet, "/v1/sandboxes/:id/activity", "sandbox activity"},
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
