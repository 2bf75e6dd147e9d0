package emulator

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

type healthResponse struct {
	Status  string `json:"status"`
	Docker  string `json:"docker"`
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// health needs no key and answers bare JSON, as load balancers and test
// fixtures poll it.
func (a *api) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if _, err := a.svc.EngineInfo(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, healthResponse{
			Status: "unavailable", Docker: "unavailable", Version: a.version, Commit: a.commit,
			Reason: a.svc.TheEngine() + " does not answer: start it, or point rtemu at one (rtemu doctor says what it tried)",
		})
	}
	return c.JSON(http.StatusOK, healthResponse{Status: "ok", Docker: "ok", Version: a.version, Commit: a.commit})
}

type templateJSON struct {
	Name         string `json:"name"`
	Slug         string `json:"slug"`
	Image        string `json:"image"`
	ImagePresent bool   `json:"imagePresent"`
}

func (a *api) listTemplates(c echo.Context) error {
	out, err := a.templates(c.Request().Context(), true)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, out)
}

// templates lists the configured templates and, when ask, whether each
// image is in the engine; on an engine error the list still comes, the
// images not asked about marked absent.
func (a *api) templates(ctx context.Context, ask bool) ([]templateJSON, error) {
	out := []templateJSON{}
	var firstErr error
	for _, t := range a.svc.Templates() {
		present := false
		if ask && firstErr == nil {
			present, firstErr = a.svc.ImagePresent(ctx, t.Image)
		}
		out = append(out, templateJSON{Name: t.Name, Slug: t.Name, Image: t.Image, ImagePresent: present})
	}
	return out, firstErr
}
