package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// sandboxJSON is the sandbox object on the wire.
type sandboxJSON struct {
	ID                  string            `json:"id"`
	Name                *string           `json:"name"`
	Template            string            `json:"template"`
	Status              string            `json:"status"`
	Tags                []string          `json:"tags"`
	Resources           resourcesJSON     `json:"resources"`
	Env                 map[string]string `json:"env"`
	Mounts              []mountJSON       `json:"mounts"`
	Metadata            json.RawMessage   `json:"metadata"`
	ProjectID           *string           `json:"projectId"`
	IdleTimeout         int               `json:"idleTimeout"`
	SSHReady            bool              `json:"sshReady"`
	VNCReady            bool              `json:"vncReady"`
	VNCURL              *string           `json:"vncUrl"`
	SSHAccessConfigured bool              `json:"sshAccessConfigured"`
	SSHAuthMethod       string            `json:"sshAuthMethod"`
	CreatedAt           string            `json:"createdAt"`
	UpdatedAt           string            `json:"updatedAt"`
	PausedAt            *string           `json:"pausedAt"`
	ResumedAt           *string           `json:"resumedAt"`
	LastActivityAt      *string           `json:"lastActivityAt"`
	Error               string            `json:"error,omitempty"`
	// Progress (an rtemu extra) says how far the pull or build of a
	// creating sandbox's image is.
	Progress string `json:"progress,omitempty"`
	// Upstream fields: the owner is rtemu's one local user; ip is the
	// sandbox's own address ("" while it has none), publicIp always ""
	// (sandboxes have no public address).
	HasWritableWorkspaceMount bool   `json:"hasWritableWorkspaceMount"`
	IP                        string `json:"ip"`
	PublicIP                  string `json:"publicIp"`
	OwnerUserID               string `json:"ownerUserId"`
	OwnerDisplayName          string `json:"ownerDisplayName"`
	OwnerEmail                string `json:"ownerEmail"`
}

type resourcesJSON struct {
	VCPUs  int    `json:"vcpus"`
	Memory string `json:"memory"`
	Disk   string `json:"disk"`
}

type mountJSON struct {
	WorkspaceID string `json:"workspaceId"`
	Path        string `json:"path"`
	ReadOnly    bool   `json:"readOnly"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := rfc3339(*t)
	return &s
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// toSandboxJSON is the sandbox object as the API shows it.
func (a *api) toSandboxJSON(ctx context.Context, sb *sandbox.Sandbox) sandboxJSON {
	auth := a.svc.SSHAuthMethod(ctx, sb)
	out := sandboxJSON{
		ID: sb.ID, Name: optString(sb.Name), Template: sb.Template, Status: string(sb.Status),
		Tags:      sb.Tags,
		Resources: resourcesJSON(sb.Resources),
		Env:       sb.Env, Metadata: sb.Metadata, ProjectID: optString(sb.ProjectID),
		IdleTimeout: sb.IdleTimeout, SSHAuthMethod: auth, SSHAccessConfigured: auth != "none",
		SSHReady:  sb.Status == sandbox.StatusRunning && a.sshServing(),
		CreatedAt: rfc3339(sb.CreatedAt), UpdatedAt: rfc3339(sb.UpdatedAt),
		PausedAt: optTime(sb.PausedAt), ResumedAt: optTime(sb.ResumedAt), LastActivityAt: optTime(sb.LastActivityAt),
		Mounts:                    make([]mountJSON, 0, len(sb.Mounts)),
		HasWritableWorkspaceMount: sb.HasWritableWorkspaceMount(), IP: sb.Address(), PublicIP: sandbox.PublicIP,
		OwnerUserID: sandbox.LocalUserID, OwnerDisplayName: sandbox.LocalUserDisplayName, OwnerEmail: sandbox.LocalUserEmail,
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if len(out.Metadata) == 0 {
		out.Metadata = json.RawMessage("{}")
	}
	for _, m := range sb.Mounts {
		out.Mounts = append(out.Mounts, mountJSON(m))
	}
	if sb.Status == sandbox.StatusFailed || sb.Status == sandbox.StatusError {
		out.Error = sb.Error
	}
	if sb.Status == sandbox.StatusCreating {
		out.Progress = sb.Progress
	}
	a.addDesktop(sb, &out)
	return out
}

type createSandboxRequest struct {
	Template  string    `json:"template"`
	Name      *string   `json:"name"`
	Tags      []string  `json:"tags"`
	SSHKeys   *[]string `json:"sshKeys"`
	Password  *string   `json:"rootPassword"`
	Resources *struct {
		VCPUs  *int    `json:"vcpus"`
		Memory *string `json:"memory"`
		Disk   *string `json:"disk"`
	} `json:"resources"`
	Env         map[string]string `json:"env"`
	IdleTimeout *int              `json:"idleTimeout"`
	Mounts      []mountJSON       `json:"mounts"`
	Metadata    json.RawMessage   `json:"metadata"`
	ProjectID   *string           `json:"projectId"`
}

func (a *api) createSandbox(c echo.Context) error {
	var req createSandboxRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	p := sandbox.CreateParams{
		Template: req.Template, Tags: req.Tags, Env: req.Env, IdleTimeout: req.IdleTimeout,
		RootPassword: req.Password, ProjectID: req.ProjectID,
	}
	if req.Name != nil {
		if *req.Name == "" {
			return badRequest("name", "must not be empty (omit it for no name)")
		}
		p.Name = *req.Name
	}
	if req.SSHKeys != nil {
		p.SSHKeys, p.SSHKeysSet = *req.SSHKeys, true
	}
	if r := req.Resources; r != nil {
		p.VCPUs, p.Memory, p.Disk = r.VCPUs, r.Memory, r.Disk
	}
	for _, m := range req.Mounts {
		p.Mounts = append(p.Mounts, sandbox.Mount(m))
	}
	if m := bytes.TrimSpace(req.Metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		if m[0] != '{' {
			return badRequest("metadata", "must be an object")
		}
		p.Metadata = m
	}
	sb, err := a.svc.Create(c.Request().Context(), p)
	if err != nil {
		return err
	}
	a.openDesktop(c.Request().Context(), sb)
	return reply(c, http.StatusCreated, a.toSandboxJSON(c.Request().Context(), sb))
}

func (a *api) listSandboxes(c echo.Context) error {
	q := c.QueryParams()
	f := sandbox.ListFilter{
		Tags: q["tag"], Template: q.Get("template"), ExcludeTemplate: q.Get("exclude_template"),
		Limit: sandbox.MaxListLimit, Cursor: q.Get("cursor"), ProjectID: q.Get("projectId"),
	}
	// tags is the SDK's name for tag: repeated, or comma-separated.
	for _, v := range q["tags"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				f.Tags = append(f.Tags, t)
			}
		}
	}
	for _, st := range q["status"] {
		f.Statuses = append(f.Statuses, sandbox.Status(st))
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return badRequest("limit", "must be a whole number from 1 to 500")
		}
		f.Limit = n
	}
	page, err := a.svc.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]sandboxJSON, 0, len(page.Items))
	for _, sb := range page.Items {
		out = append(out, a.toSandboxJSON(c.Request().Context(), sb))
	}
	return replyList(c, out, page.HasMore, page.NextCursor)
}

func (a *api) getSandbox(c echo.Context) error {
	sb, err := a.svc.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, a.toSandboxJSON(c.Request().Context(), sb))
}

func (a *api) updateSandbox(c echo.Context) error {
	var raw map[string]json.RawMessage
	if err := decodeJSON(c, &raw, false); err != nil {
		return err
	}
	var p sandbox.UpdateParams
	for field, dst := range map[string]**string{"name": &p.Name, "projectId": &p.ProjectID} {
		v, ok := raw[field]
		if !ok {
			continue
		}
		s := ""
		if !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			if err := json.Unmarshal(v, &s); err != nil {
				return badRequest(field, "must be a string or null")
			}
			if s == "" {
				return badRequest(field, "must not be empty (send null to clear it)")
			}
		}
		*dst = &s
	}
	sb, err := a.svc.Update(c.Request().Context(), c.Param("id"), p)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, a.toSandboxJSON(c.Request().Context(), sb))
}

func (a *api) deleteSandbox(c echo.Context) error {
	async, err := boolQuery(c, "async")
	if err != nil {
		return err
	}
	sb, err := a.svc.Delete(c.Request().Context(), c.Param("id"), async)
	if err != nil {
		return err
	}
	if sb.Status == sandbox.StatusDestroyed {
		return reply(c, http.StatusOK, map[string]any{"id": sb.ID, "deleted": true})
	}
	return reply(c, http.StatusOK, map[string]any{"id": sb.ID, "deleted": false, "status": sb.Status})
}

func boolQuery(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(name, "must be true or false")
	}
	return b, nil
}

func (a *api) pauseSandbox(c echo.Context) error {
	st, sb, err := a.svc.Pause(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"id": sb.ID, "status": st})
}

func (a *api) resumeSandbox(c echo.Context) error {
	st, sb, err := a.svc.Resume(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"id": sb.ID, "status": st})
}
