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
	Auth        string             `json:"auth"`
	Engine      *engineJSON        `json:"engine"`
	EngineError string             `json:"engineError,omitempty"`
	Templates   []infoTemplateJSON `json:"templates"`
	// Seed is the state a reset to the seed returns to; null for none.
	Seed *seedJSON `json:"seed"`
}

// seedJSON is the seed as the dashboard shows it.
type seedJSON struct {
	ID        string `json:"id"`
	CreatedAt string `json:"createdAt"`
	Sandboxes int    `json:"sandboxes"`
}

// infoTemplateJSON is a template as /v1/templates has it, and how its image
// is made: a recipe's image is built (`rtemu templates build RECIPE`), any
// other pulled.
type infoTemplateJSON struct {
	templateJSON
	Recipe string `json:"recipe,omitempty"`
	// Fallback is the image a recipe template uses while its own is not
	// built.
	Fallback string `json:"fallback,omitempty"`
}

type engineJSON struct {
	// Kind is the engine in use ("docker"); Cluster names the cluster of
	// an engine that has one.
	Kind       string `json:"kind"`
	Cluster    string `json:"cluster,omitempty"`
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
		Templates: []infoTemplateJSON{}}
	eng, err := a.svc.EngineInfo(ctx)
	if err != nil {
		// The page still shows the rest; the health endpoint says the same.
		out.EngineError = a.svc.TheEngine() + " does not answer"
	} else {
		out.Engine = &engineJSON{Kind: a.engineKind, Version: eng.Version, APIVersion: eng.APIVersion, OS: eng.OS, Host: eng.Host, CPUs: eng.CPUs}
	}
	// A slow engine costs the page the images column, not the answer.
	tpls, err := a.templates(ctx, out.Engine != nil)
	if err != nil {
		out.EngineError = a.svc.TheEngine() + " did not say which images it has"
	}
	recipes := map[string][2]string{}
	for _, t := range a.svc.Templates() {
		recipes[t.Name] = [2]string{t.Recipe, t.Fallback}
	}
	for _, t := range tpls {
		r := recipes[t.Name]
		out.Templates = append(out.Templates, infoTemplateJSON{templateJSON: t, Recipe: r[0], Fallback: r[1]})
	}
	if m := a.svc.Seed(); m != nil {
		out.Seed = &seedJSON{ID: m.ID, CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339), Sandboxes: len(m.Sandboxes)}
	}
	return reply(c, http.StatusOK, out)
}
