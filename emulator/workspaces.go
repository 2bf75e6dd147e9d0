package emulator

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// workspaceJSON is the workspace object on the wire (upstream's list
// shape, with the create answer's nfsPath). rtemu has one local user, who
// owns every workspace, and no quotas: the workspace is never personal,
// and quotaBytes is 0 (none). nfsPath is the workspace's folder as the
// engine bind-mounts it.
type workspaceJSON struct {
	ID               string  `json:"id"`
	Slug             string  `json:"slug"`
	Name             string  `json:"name"`
	SizeBytes        int64   `json:"sizeBytes"`
	QuotaBytes       int64   `json:"quotaBytes"`
	CreatedAt        string  `json:"createdAt"`
	UpdatedAt        string  `json:"updatedAt"`
	LastAccessedAt   *string `json:"lastAccessedAt"`
	IsPersonal       bool    `json:"isPersonal"`
	OwnerUserID      string  `json:"ownerUserId"`
	OwnerDisplayName string  `json:"ownerDisplayName"`
	OwnerEmail       string  `json:"ownerEmail"`
	NFSPath          string  `json:"nfsPath"`
}

type storageJSON struct {
	UsedBytes  int64 `json:"usedBytes"`
	QuotaBytes int64 `json:"quotaBytes"`
	Unlimited  bool  `json:"unlimited"`
}

func (a *api) toWorkspaceJSON(w *sandbox.Workspace) workspaceJSON {
	return workspaceJSON{
		ID: w.ID, Slug: w.Slug, Name: w.Name, SizeBytes: w.SizeBytes,
		CreatedAt: rfc3339(w.CreatedAt), UpdatedAt: rfc3339(w.UpdatedAt), LastAccessedAt: optTime(w.LastAccessedAt),
		OwnerUserID: sandbox.LocalUserID, OwnerDisplayName: sandbox.LocalUserDisplayName, OwnerEmail: sandbox.LocalUserEmail,
		NFSPath: a.svc.WorkspaceFolder(w.ID),
	}
}

func toStorageJSON(t sandbox.StorageTotals) storageJSON { return storageJSON(t) }

type createWorkspaceRequest struct {
	// ID is an emulator extension: a client-chosen UUID, so that recorded
	// requests naming a workspace can be replayed.
	ID   string `json:"id"`
	Name string `json:"name"`
	Slug string `json:"slug"`
}

func (a *api) createWorkspace(c echo.Context) error {
	var req createWorkspaceRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	w, err := a.svc.CreateWorkspace(c.Request().Context(), sandbox.WorkspaceParams{ID: req.ID, Name: req.Name, Slug: req.Slug})
	if err != nil {
		return err
	}
	return reply(c, http.StatusCreated, a.toWorkspaceJSON(w))
}

func (a *api) listWorkspaces(c echo.Context) error {
	ws, tot, err := a.svc.ListWorkspaces(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]workspaceJSON, 0, len(ws))
	for _, w := range ws {
		out = append(out, a.toWorkspaceJSON(w))
	}
	return reply(c, http.StatusOK, map[string]any{"workspaces": out, "storage": toStorageJSON(tot)})
}

func (a *api) getWorkspace(c echo.Context) error {
	w, err := a.svc.GetWorkspace(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, a.toWorkspaceJSON(w))
}

func (a *api) renameWorkspace(c echo.Context) error {
	var req struct {
		Name *string `json:"name"`
	}
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	if req.Name == nil {
		return badRequest("name", "is required: the new name")
	}
	w, err := a.svc.RenameWorkspace(c.Request().Context(), c.Param("id"), *req.Name)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, a.toWorkspaceJSON(w))
}

func (a *api) workspaceUsage(c echo.Context) error {
	w, uses, err := a.svc.WorkspaceUsage(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	sbs := make([]map[string]any, 0, len(uses))
	for _, u := range uses {
		sbs = append(sbs, map[string]any{"id": u.SandboxID, "name": optString(u.Name), "status": u.Status,
			"path": u.Path, "readOnly": u.ReadOnly})
	}
	return reply(c, http.StatusOK, map[string]any{
		"workspaceId": w.ID, "inUse": len(uses) > 0, "sandboxes": sbs, "agents": []any{},
	})
}

func (a *api) deleteWorkspace(c echo.Context) error {
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	w, err := a.svc.DeleteWorkspace(c.Request().Context(), c.Param("id"), force)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"id": w.ID, "deleted": true})
}

// fileTime is a file's time as upstream's listing shows it (milliseconds).
func fileTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
