package emulator

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// projectJSON is a project on the wire. The hosted API documents no
// project object; these are the fields its docs name (a name, a colour,
// a default project per organisation), in its usual spelling. isDefault is
// rtemu's.
type projectJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Color     string `json:"color"`
	IsDefault bool   `json:"isDefault"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

func toProjectJSON(p *sandbox.Project) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, Color: p.Color, IsDefault: p.IsDefault,
		CreatedAt: rfc3339(p.CreatedAt), UpdatedAt: rfc3339(p.UpdatedAt)}
}

type projectRequest struct {
	Name  *string `json:"name"`
	Color *string `json:"color"`
}

func (a *api) listProjects(c echo.Context) error {
	ps, err := a.svc.ListProjects(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]projectJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, toProjectJSON(p))
	}
	return replyList(c, out, false, "")
}

func (a *api) createProject(c echo.Context) error {
	var req projectRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	p, err := a.svc.CreateProject(c.Request().Context(), sandbox.ProjectParams(req))
	if err != nil {
		return err
	}
	return reply(c, http.StatusCreated, toProjectJSON(p))
}

func (a *api) getProject(c echo.Context) error {
	p, err := a.svc.GetProject(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, toProjectJSON(p))
}

func (a *api) updateProject(c echo.Context) error {
	var raw map[string]json.RawMessage
	if err := decodeJSON(c, &raw, false); err != nil {
		return err
	}
	var p sandbox.ProjectParams
	for field, dst := range map[string]**string{"name": &p.Name, "color": &p.Color} {
		v, ok := raw[field]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return badRequest(field, "must be a string")
		}
		*dst = &s
	}
	pr, err := a.svc.UpdateProject(c.Request().Context(), c.Param("id"), p)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, toProjectJSON(pr))
}

func (a *api) deleteProject(c echo.Context) error {
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	p, err := a.svc.DeleteProject(c.Request().Context(), c.Param("id"), force)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"id": p.ID, "deleted": true})
}
