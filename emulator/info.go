package emulator

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// infoJSON is the state of rtemu itself, for the dashboard (emulator-only).
type infoJSON struct {
	Version string `json:"version"`
	DataDir string `json:"dataDir"`
	// SSHAddr is the SSH gateway's address as configured (--ssh-addr).
	SSHAddr string `json:"sshAddr"`
	// Auth is "default" (any well-formed key), "strict" (--api-key) or "off".
	Auth        string         `json:"auth"`
	Engine      *engineJSON    `json:"engine"`
	EngineError string         `json:"engineError,omitempty"`
	Templates   []templateJSON `json:"templates"`
}

type engineJSON struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	OS         string `json:"os"`
	Host       string `json:"host"`
	CPUs       int    `json:"cpus"`
}

// info needs a key like the API: it names the data dir and the engine.
func (a *api) info(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	out := infoJSON{Version: a.version, DataDir: a.dataDir, SSHAddr: a.sshAddr, Auth: a.authMode,
		Templates: []templateJSON{}}
	eng, err := a.svc.EngineInfo(ctx)
	if err != nil {
		// The page still shows the rest; the health endpoint says the same.
		out.EngineError = a.svc.TheEngine() + " does not answer"
	} else {
		out.Engine = &engineJSON{Version: eng.Version, APIVersion: eng.APIVersion, OS: eng.OS, Host: eng.Host, CPUs: eng.CPUs}
	}
	// A slow engine costs the page the images column, not the answer.
	if out.Templates, err = a.templates(ctx, out.Engine != nil); err != nil {
		out.EngineError = a.svc.TheEngine() + " did not say which images it has"
	}
	return reply(c, http.StatusOK, out)
}
