// Package emulator is rtemu's HTTP front door: the Runtools REST API on Echo.
// Handlers parse and validate the wire format, call the lifecycle service,
// and write the envelope; errors are mapped to the contract's envelope in one
// place (errors.go).
package emulator

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/rtemu-dev/rtemu/internal/logring"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// Config configures the HTTP API.
type Config struct {
	Service *sandbox.Service
	Version string
	// Commit is the commit rtemu was built from ("" when unknown).
	Commit string
	// APIKeys, when set, is strict mode: only these keys are accepted.
	APIKeys []string
	// AuthOff accepts requests with any key or none.
	AuthOff bool
	Logger  *slog.Logger
	// DevURLs serves GET /v1/sandboxes/{id}/url; nil answers 501.
	DevURLs *DevURLs
	// SSH is the SSH gateway, for sshReady and GET /v1/sandboxes/{id}/ssh;
	// nil when there is none.
	SSH SSHGateway
	// DataDir and SSHAddr are shown by the dashboard (/_emulator/info).
	DataDir string
	SSHAddr string
	// PublicSSHAddr is the SSH gateway's address as clients reach it, for
	// the ssh command rtemu hands out; "" is the listener's.
	PublicSSHAddr string
	// StopStreams, closed when rtemu shuts down, ends long-lived answers
	// (the dashboard's event stream): http.Server.Shutdown waits for them.
	StopStreams <-chan struct{}
	// PortURLs makes the desktop's URL (GET /v1/sandboxes/{id}/vnc,
	// vncUrl); nil leaves the desktop without one.
	PortURLs PortURLs
	// Logs is rtemu's recent log lines, for GET /_emulator/logs; nil
	// answers 501.
	Logs *logring.Ring
}

type api struct {
	svc     *sandbox.Service
	version string
	commit  string
	log     *slog.Logger
	gate    *gate
	devURLs *DevURLs
	ssh     SSHGateway
	// for the dashboard
	dataDir, sshAddr, authMode string
	stopStreams                <-chan struct{}
	// portURLs makes the desktop's URL through the dev-URL proxy.
	portURLs      PortURLs
	publicSSHAddr string
	logRing       *logring.Ring
	engineKind    string
}

// New returns the API as an http.Handler.
func New(cfg Config) http.Handler {
	a := &api{svc: cfg.Service, version: cfg.Version, commit: cfg.Commit, log: cfg.Logger, gate: newGate(), devURLs: cfg.DevURLs, ssh: cfg.SSH,
		dataDir: cfg.DataDir, sshAddr: cfg.SSHAddr, authMode: authMode(cfg), stopStreams: cfg.StopStreams,
		portURLs: cfg.PortURLs, publicSSHAddr: cfg.PublicSSHAddr, logRing: cfg.Logs,
		engineKind: strings.ToLower(cfg.Service.Capabilities().Name)}
	if a.log == nil {
		a.log = slog.Default()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.handleError
	e.Use(requestID, a.versionHeader, a.logRequests, recoverPanics, limitBody(maxBody, bodyLimits), authenticate(cfg.APIKeys, cfg.AuthOff))
	for _, r := range a.routes() {
		if r.method == getHead {
			e.Match([]string{http.MethodGet, http.MethodHead}, r.path, r.handler, operation(r.op))
			continue
		}
		mw := []echo.MiddlewareFunc{operation(r.op)}
		if !r.control {
			mw = append(mw, a.gate.shared, a.injectFaults)
		}
		e.Add(r.method, r.path, r.handler, mw...)
	}
	return e
}

// recoverPanics makes a panic in a handler an internal_error answer, not a
// dropped connection.
var recoverPanics = middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true})

// route is one endpoint. op names it for fault injection (sandbox.create,
// …); control marks rtemu's own endpoints, which faults and the reset gate
// leave alone.
type route struct {
	method, path, op string
	handler          echo.HandlerFunc
	control          bool
}

// getHead marks a route served for both GET and HEAD.
const getHead = "GET+HEAD"

// routes is the whole API surface, top to bottom.
func (a *api) routes() []route {
	rs := []route{
		{http.MethodGet, "/health", "health", a.health, true},
		{http.MethodGet, "/openapi.json", "openapi", a.openAPI, true},
		{http.MethodGet, "/v1/templates", "template.list", a.listTemplates, false},

		{http.MethodPost, "/v1/sandboxes", "sandbox.create", a.createSandbox, false},
		{http.MethodGet, "/v1/sandboxes", "sandbox.list", a.listSandboxes, false},
		{http.MethodGet, "/v1/sandboxes/:id", "sandbox.get", a.getSandbox, false},
		{http.MethodPatch, "/v1/sandboxes/:id", "sandbox.update", a.updateSandbox, false},
		{http.MethodDelete, "/v1/sandboxes/:id", "sandbox.delete", a.deleteSandbox, false},
		{http.MethodPost, "/v1/sandboxes/:id/pause", "sandbox.pause", a.pauseSandbox, false},
		{http.MethodPost, "/v1/sandboxes/:id/resume", "sandbox.resume", a.resumeSandbox, false},
		{http.MethodPost, "/v1/sandboxes/:id/exec", "sandbox.exec", a.exec, false},
		{http.MethodGet, "/v1/sandboxes/:id/url", "sandbox.url", a.devURL, false},
		{http.MethodGet, "/v1/sandboxes/:id/stats", "sandbox.stats", a.sandboxStats, false},
		{http.MethodGet, "/v1/sandboxes/:id/activity", "sandbox.activity", a.sandboxActivity, false},
		{http.MethodGet, "/v1/sandboxes/:id/ssh", "sandbox.ssh", a.sandboxSSH, false},
		{http.MethodGet, "/v1/sandboxes/:id/vnc", "sandbox.vnc", a.vnc, false},

		{http.MethodGet, "/v1/activity", "activity.list", a.activity, false},

		{http.MethodPost, "/v1/terminal/sandbox-sessions", "terminal.create", a.createTerminalSession, false},
		{http.MethodGet, terminalPath + ":id", "terminal.connect", a.terminalSocket, false},

		{http.MethodGet, "/v1/projects", "project.list", a.listProjects, false},
		{http.MethodPost, "/v1/projects", "project.create", a.createProject, false},
		{http.MethodGet, "/v1/projects/:id", "project.get", a.getProject, false},
		{http.MethodPatch, "/v1/projects/:id", "project.update", a.updateProject, false},
		{http.MethodDelete, "/v1/projects/:id", "project.delete", a.deleteProject, false},

		{http.MethodPost, "/v1/ssh-keys", "sshkey.create", a.createSSHKey, false},
		{http.MethodGet, "/v1/ssh-keys", "sshkey.list", a.listSSHKeys, false},
		{http.MethodDelete, "/v1/ssh-keys/:id", "sshkey.delete", a.deleteSSHKey, false},

		{http.MethodGet, "/v1/secrets", "secret.list", a.listSecrets, false},
		{http.MethodPost, "/v1/secrets", "secret.put", a.putSecret, false},
		{http.MethodPost, "/v1/secrets/:name/reveal", "secret.reveal", a.revealSecret, false},
		{http.MethodDelete, "/v1/secrets/:name", "secret.delete", a.deleteSecret, false},

		{http.MethodGet, "/v1/workspaces", "workspace.list", a.listWorkspaces, false},
		{http.MethodPost, "/v1/workspaces", "workspace.create", a.createWorkspace, false},
		{http.MethodGet, "/v1/workspaces/:id", "workspace.get", a.getWorkspace, false},
		{http.MethodPatch, "/v1/workspaces/:id", "workspace.update", a.renameWorkspace, false},
		{http.MethodDelete, "/v1/workspaces/:id", "workspace.delete", a.deleteWorkspace, false},
		{http.MethodGet, "/v1/workspaces/:id/usage", "workspace.usage", a.workspaceUsage, false},
		{http.MethodGet, "/v1/workspaces/:id/files", "file.list", a.listFiles, false},
		{http.MethodGet, "/v1/workspaces/:id/files/*", "file.list", a.listFiles, false},
		{http.MethodPost, "/v1/workspaces/:id/files", "file.create", a.createFile, false},
		{http.MethodPost, "/v1/workspaces/:id/files/*", "file.create", a.createFile, false},
		{http.MethodPut, "/v1/workspaces/:id/files", "file.batch", a.changeFiles, false},
		{http.MethodPut, "/v1/workspaces/:id/files/*", "file.change", a.changeFile, false},
		{http.MethodDelete, "/v1/workspaces/:id/files", "file.delete", a.deleteFiles, false},
		{http.MethodPost, "/v1/workspaces/:id/upload", "file.upload", a.upload, false},
		{http.MethodPost, "/v1/workspaces/:id/upload/*", "file.upload", a.upload, false},
		{http.MethodGet, "/v1/workspaces/:id/direct", "file.download", a.download, false},
		{http.MethodGet, "/v1/workspaces/:id/info", "workspace.info", a.storageInfo, false},
		{http.MethodGet, "/v1/workspaces/:id/info/*", "file.info", a.fileInfo, false},

		{http.MethodPost, "/_emulator/reset", "emulator.reset", a.reset, true},
		{http.MethodGet, "/_emulator/state", "emulator.state.save", a.saveState, true},
		{http.MethodPost, "/_emulator/state", "emulator.state.load", a.loadState, true},
		{http.MethodGet, "/_emulator/faults", "emulator.faults.list", a.listFaults, true},
		{http.MethodPost, "/_emulator/faults", "emulator.faults.arm", a.armFault, true},
		{http.MethodDelete, "/_emulator/faults", "emulator.faults.clear", a.clearFaults, true},
		{http.MethodGet, "/_emulator/operations", "emulator.operations", a.listOperations, true},
		{http.MethodPost, "/_emulator/sandboxes/:id/expire-idle", "emulator.expireIdle", a.expireIdle, true},
		{http.MethodGet, "/_emulator/info", "emulator.info", a.info, true},
		{http.MethodGet, logsPath, "emulator.logs", a.logs, true},
		{http.MethodGet, eventsPath, "emulator.events", a.events, true},
		{getHead, "/", "dashboard", a.dashboardPage, true},
		{getHead, dashboardAssets + "*", "dashboard", a.dashboardAsset, true},
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
	{http.MethodPost, "/v1/execute", "stateless code execution (/v1/execute)"},
}

func notImplementedHandler(op string) echo.HandlerFunc {
	return func(c echo.Context) error {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented",
			message: "rtemu does not implement " + op + " (" + c.Request().Method + " " + c.Path() + ") yet"}
	}
}
