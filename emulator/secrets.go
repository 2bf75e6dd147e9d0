package emulator

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// secretJSON is a secret's metadata: no answer but a reveal carries a value.
type secretJSON struct {
	Name        string  `json:"name"`
	Scope       string  `json:"scope"`
	Category    string  `json:"category"`
	Description *string `json:"description"`
	OrgWide     bool    `json:"orgWide"`
	CreatedAt   string  `json:"createdAt"`
	UpdatedAt   string  `json:"updatedAt"`
}

func toSecretJSON(s *sandbox.Secret) secretJSON {
	return secretJSON{Name: s.Name, Scope: s.Scope, Category: s.Category, Description: optString(s.Description),
		OrgWide: s.OrgWide, CreatedAt: rfc3339(s.CreatedAt), UpdatedAt: rfc3339(s.UpdatedAt)}
}

type putSecretRequest struct {
	Name        string  `json:"name"`
	Value       *string `json:"value"`
	Scope       *string `json:"scope"`
	Category    *string `json:"category"`
	Description *string `json:"description"`
	OrgWide     *bool   `json:"orgWide"`
}

// putSecret creates a secret (201) or rotates the one of that name (200).
func (a *api) putSecret(c echo.Context) error {
	var req putSecretRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	sec, created, err := a.svc.PutSecret(c.Request().Context(), sandbox.PutSecretParams{Name: req.Name, Value: req.Value,
		Scope: req.Scope, Category: req.Category, Description: req.Description, OrgWide: req.OrgWide})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return reply(c, status, toSecretJSON(sec))
}

func (a *api) listSecrets(c echo.Context) error {
	secs, err := a.svc.Secrets(c.Request().Context(), c.QueryParam("category"))
	if err != nil {
		return err
	}
	out := make([]secretJSON, 0, len(secs))
	for _, s := range secs {
		out = append(out, toSecretJSON(s))
	}
	return replyList(c, out, false, "")
}

func (a *api) revealSecret(c echo.Context) error {
	sec, value, err := a.svc.RevealSecret(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]string{"name": sec.Name, "value": value})
}

func (a *api) deleteSecret(c echo.Context) error {
	name, err := a.svc.DeleteSecret(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"name": name, "deleted": true})
}
