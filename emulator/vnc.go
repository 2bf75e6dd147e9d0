package emulator

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// PortURLs makes the URL at which rtemu's dev-URL proxy serves a port of a
// sandbox. The desktop's URL is one of them (port 6901), so VNC traffic
// takes the same path as any dev URL: WebSocket passthrough, activity
// counted, a paused sandbox resumed by the first request.
type PortURLs interface {
	// PortURL gives the URL, opening its listener if it has none yet.
	PortURL(ctx context.Context, ref string, port int) (string, error)
	// KnownPortURL gives the URL only if it is served already: showing a
	// sandbox opens nothing.
	KnownPortURL(sandboxID string, port int) (string, bool)
}

// vncJSON is the wire form of GET /v1/sandboxes/{id}/vnc. host and port are
// where the URL points: the address a client connects to.
type vncJSON struct {
	URL  string `json:"url"`
	Host string `json:"host"`
	Port int    `json:"port"`
	// ExpiresAt is the hosted API's: its URLs are signed and short-lived.
	// rtemu's URL needs no token and keeps working; clients that renew
	// the URL before expiresAt just get the same one again.
	ExpiresAt string `json:"expiresAt"`
}

// vnc answers GET /v1/sandboxes/{id}/vnc.
func (a *api) vnc(c echo.Context) error {
	ctx := c.Request().Context()
	sb, err := a.svc.Desktop(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if a.portURLs == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", message: "dev URLs are not served by this rtemu"}
	}
	raw, err := a.portURLs.PortURL(ctx, sb.ID, sandbox.VNCPort)
	if err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	out := vncJSON{URL: raw, Host: u.Hostname(), ExpiresAt: rfc3339(time.Now().Add(sandbox.DesktopURLLifetime))}
	out.Port, _ = strconv.Atoi(u.Port())
	if out.Port == 0 {
		out.Port = map[string]int{"http": 80, "https": 443}[u.Scheme]
	}
	return reply(c, http.StatusOK, out)
}

// openDesktop gives a new desktop sandbox its desktop URL (its listener),
// so that showing the sandbox later only reads it.
func (a *api) openDesktop(ctx context.Context, sb *sandbox.Sandbox) {
	if !sb.HasDesktop() || a.portURLs == nil {
		return
	}
	if _, err := a.portURLs.PortURL(ctx, sb.ID, sandbox.VNCPort); err != nil {
		a.log.Warn("no desktop URL", "sandbox", sb.ID, "err", err)
	}
}

// addDesktop fills in, for a desktop sandbox, its URL and whether its
// desktop answers, as already known: it opens, writes and dials nothing.
func (a *api) addDesktop(sb *sandbox.Sandbox, out *sandboxJSON) {
	if !sb.HasDesktop() || a.portURLs == nil {
		return
	}
	switch sb.Status {
	case sandbox.StatusCreating, sandbox.StatusRunning, sandbox.StatusPausing, sandbox.StatusPaused, sandbox.StatusResuming:
		// The URL works in all of these (a paused sandbox is resumed by the
		// first request); readiness is only ever true while running.
		if u, ok := a.portURLs.KnownPortURL(sb.ID, sandbox.VNCPort); ok {
			out.VNCURL = &u
		}
		out.VNCReady = a.svc.VNCReady(sb)
	}
}
