package emulator

import (
	"io/fs"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/dashboard"
)

// dashboardCSP keeps the page offline and self-contained: a script, style,
// font or image from anywhere but rtemu itself is refused by the browser, so
// a stray CDN link fails loudly in the browser tests instead of working only
// online.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardPage serves the dashboard at /. It holds no data, so it needs no
// key: the page asks for one when its API calls are refused.
func (a *api) dashboardPage(c echo.Context) error {
	return serveDashboardFile(c, "index.html")
}

// dashboardAsset serves the dashboard's stylesheet, modules and icon.
func (a *api) dashboardAsset(c echo.Context) error {
	name := c.Param("*")
	if !fs.ValidPath(name) || path.Ext(name) == "" {
		return echo.ErrNotFound
	}
	return serveDashboardFile(c, name)
}

func serveDashboardFile(c echo.Context, name string) error {
	files := dashboard.Files()
	if st, err := fs.Stat(files, name); err != nil || st.IsDir() {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Embedded files carry no modification time; no-cache makes the browser
	// revalidate, so a new rtemu binary never runs with an old page's modules.
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(c.Response(), c.Request(), files, name)
	return nil
}

// dashboardAssets is where the page's stylesheet, modules and icon are.
const dashboardAssets = "/_emulator/dashboard/"

// authMode names the auth setting for the dashboard.
func authMode(cfg Config) string {
	switch {
	case cfg.AuthOff:
		return "off"
	case len(cfg.APIKeys) > 0:
		return "strict"
	}
	return "default"
}
