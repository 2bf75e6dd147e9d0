package emulator

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// The workspace file API. Upstream serves it on a storage host; rtemu on
// the API origin. File ids are workspace paths ("/src/a.txt"). The listing
// is a bare JSON array (no envelope), in the shape of upstream's current
// docs: {id, value, type: file|folder, date, size} for files and
// {id, value, type: "folder", date, lazy: true, count} for folders.

// maxUploadBody caps an upload request: a file of sandbox.MaxUploadBytes
// and room for the multipart framing around it.
const maxUploadBody = sandbox.MaxUploadBytes + 64<<10

// bodyLimits are the routes whose bodies may exceed maxBody.
var bodyLimits = map[string]int64{
	"/v1/workspaces/:id/upload":   maxUploadBody,
	"/v1/workspaces/:id/upload/*": maxUploadBody,
	"/_emulator/state":            maxStateBody,
}

// fileJSON is one listing entry.
type fileJSON struct {
	ID    string `json:"id"`
	Value string `json:"value"`
	Type  string `json:"type"`
	Date  string `json:"date"`
	Size  *int64 `json:"size,omitempty"`
	Lazy  bool   `json:"lazy,omitempty"`
	Count *int   `json:"count,omitempty"`
	// Symlink marks a symbolic link (an emulator extension); links are
	// listed, never followed, and typed "file" whatever they point to.
	Symlink bool `json:"symlink,omitempty"`
}

func toFileJSON(e sandbox.FileEntry) fileJSON {
	out := fileJSON{ID: e.ID, Value: e.Name, Type: "file", Date: fileTime(e.ModTime), Symlink: e.Symlink}
	if e.Dir {
		out.Type, out.Lazy = "folder", true
		if e.Count >= 0 {
			n := e.Count
			out.Count = &n
		}
	} else {
		size := e.Size
		out.Size = &size
	}
	return out
}

// subPath is the workspace path the route's wildcard holds, decoded ("" =
// the root). Echo matches on the raw path when the URL has escapes, so the
// wildcard is then still escaped.
func subPath(c echo.Context) (string, error) {
	p := c.Param("*")
	if c.Request().URL.RawPath == "" {
		return p, nil
	}
	d, err := url.PathUnescape(p)
	if err != nil {
		return "", badRequest("path", "malformed percent-encoding")
	}
	return d, nil
}

func (a *api) listFiles(c echo.Context) error {
	p, err := subPath(c)
	if err != nil {
		return err
	}
	hidden, err := boolQuery(c, "showHidden")
	if err != nil {
		return err
	}
	entries, err := a.svc.ListFiles(c.Request().Context(), c.Param("id"), p, hidden)
	if err != nil {
		return err
	}
	out := make([]fileJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, toFileJSON(e))
	}
	// Upstream's listing is a bare array, not the envelope.
	return c.JSON(http.StatusOK, out)
}

// storageInfo is GET …/info: the storage usage around this workspace.
func (a *api) storageInfo(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := a.svc.GetWorkspace(ctx, c.Param("id")); err != nil {
		return err
	}
	tot, err := a.svc.StorageTotals(ctx)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, toStorageJSON(tot))
}

// fileInfo is GET …/info/{path}: a file or folder with its tree's size and
// counts (count: files, folders: folders below it).
func (a *api) fileInfo(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := subPath(c)
	if err != nil {
		return err
	}
	e, u, err := a.svc.FileInfo(ctx, c.Param("id"), p)
	if err != nil {
		return err
	}
	typ := "file"
	if e.Dir {
		typ = "folder"
	}
	return reply(c, http.StatusOK, map[string]any{
		"id": e.ID, "value": e.Name, "type": typ, "date": fileTime(e.ModTime),
		"size": u.Bytes, "count": u.Files, "folders": u.Folders,
	})
}

type createFileRequest struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Contents *string `json:"contents"`
}

func (a *api) createFile(c echo.Context) error {
	p, err := subPath(c)
	if err != nil {
		return err
	}
	var req createFileRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	if req.Type == "" {
		req.Type = "file"
	}
	e, err := a.svc.CreateFile(c.Request().Context(), c.Param("id"), p,
		sandbox.FileCreate{Name: req.Name, Type: req.Type, Contents: req.Contents})
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, toFileJSON(e))
}

// upload streams a multipart file to disk: field "file" (required), and
// "name" to override its file name. The target folder is the path after
// /upload, or the query's id, or the root.
func (a *api) upload(c echo.Context) error {
	r := c.Request()
	dir, err := subPath(c)
	if err != nil {
		return err
	}
	if dir == "" {
		dir = c.QueryParam("id")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			message: "an upload is multipart/form-data with a \"file\" field (curl -F file=@PATH)"}
	}
	up, err := a.svc.BeginUpload(r.Context(), c.Param("id"), dir)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			up.Abort()
		}
	}()
	var name, fileName string
	gotFile := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return multipartError(err)
		}
		switch part.FormName() {
		case "file":
			if gotFile {
				return badRequest("file", "one file per upload")
			}
			gotFile, fileName = true, part.FileName()
			// One byte past the limit tells a file that is too big.
			n, err := io.Copy(up, io.LimitReader(part, sandbox.MaxUploadBytes+1))
			if err != nil {
				return multipartError(err)
			}
			if n > sandbox.MaxUploadBytes {
				return &http.MaxBytesError{Limit: sandbox.MaxUploadBytes}
			}
		case "name":
			b, err := io.ReadAll(io.LimitReader(part, 4096))
			if err != nil {
				return multipartError(err)
			}
			name = string(b)
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return multipartError(err)
			}
		}
	}
	if !gotFile {
		return badRequest("file", "the multipart field \"file\" is required")
	}
	if name == "" {
		name = fileName
	}
	if name == "" {
		return badRequest("name", "the file part has no filename; send a \"name\" field")
	}
	committed = true
	e, err := up.Commit(name)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, toFileJSON(e))
}

// multipartError keeps a body-size error (413) and calls anything else a
// malformed body.
func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("body", "malformed multipart body")
}

type changeFileRequest struct {
	Operation string   `json:"operation"`
	Target    string   `json:"target"`
	Contents  *string  `json:"contents"`
	IDs       []string `json:"ids"`
}

// changeFile is PUT …/files/{path}: rename, move, copy or write one entry.
// With ids and no target, it copies or moves those ids into {path}.
func (a *api) changeFile(c echo.Context) error {
	p, err := subPath(c)
	if err != nil {
		return err
	}
	var req changeFileRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if len(req.IDs) > 0 && req.Target == "" && (req.Operation == sandbox.OpMove || req.Operation == sandbox.OpCopy) {
		out, err := a.svc.ChangeFiles(ctx, c.Param("id"), req.Operation, req.IDs, "/"+p)
		if err != nil {
			return err
		}
		return replyFiles(c, out)
	}
	if p == "" {
		return badRequest("path", "name the entry to change: PUT /v1/workspaces/{id}/files/{path}")
	}
	e, err := a.svc.ChangeFile(ctx, c.Param("id"), p,
		sandbox.FileChange{Operation: req.Operation, Target: req.Target, Contents: req.Contents})
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, toFileJSON(e))
}

// changeFiles is PUT …/files: copy or move ids into the folder target.
func (a *api) changeFiles(c echo.Context) error {
	var req changeFileRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	out, err := a.svc.ChangeFiles(c.Request().Context(), c.Param("id"), req.Operation, req.IDs, req.Target)
	if err != nil {
		return err
	}
	return replyFiles(c, out)
}

func replyFiles(c echo.Context, es []sandbox.FileEntry) error {
	out := make([]fileJSON, 0, len(es))
	for _, e := range es {
		out = append(out, toFileJSON(e))
	}
	return reply(c, http.StatusOK, out)
}

func (a *api) deleteFiles(c echo.Context) error {
	var req struct {
		IDs []string `json:"ids"`
	}
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	ids, err := a.svc.DeleteFiles(c.Request().Context(), c.Param("id"), req.IDs)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"deleted": ids})
}

// download streams one file, inline or (download=true) as an attachment,
// with Range and conditional requests as net/http serves them.
func (a *api) download(c echo.Context) error {
	p := c.QueryParam("path")
	if p == "" {
		p = c.QueryParam("id")
	}
	attach, err := boolQuery(c, "download")
	if err != nil {
		return err
	}
	file, e, err := a.svc.OpenFile(c.Request().Context(), c.Param("id"), p)
	if err != nil {
		return err
	}
	defer file.Close()
	disp := "inline"
	if attach {
		disp = "attachment"
	}
	h := c.Response().Header()
	if v := mime.FormatMediaType(disp, map[string]string{"filename": e.Name}); v != "" {
		h.Set("Content-Disposition", v)
	} else {
		h.Set("Content-Disposition", disp)
	}
	// A workspace file shown inline must not run script on the API's
	// origin (the dashboard lives there).
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	http.ServeContent(c.Response(), c.Request(), e.Name, e.ModTime, file)
	return nil
}
