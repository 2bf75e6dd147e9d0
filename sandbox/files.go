package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/rtemu-dev/rtemu/workspacefs"
)

// FileEntry is one file or folder of a workspace.
type FileEntry = workspacefs.Entry

// FileUsage is the size and counts of a tree.
type FileUsage = workspacefs.Usage

// File operations of PUT …/files[/{path}].
const (
	OpRename = "rename"
	OpMove   = "move"
	OpCopy   = "copy"
	OpWrite  = "write"
)

// fileError turns a workspacefs error into the service's terms. field names
// the request field the path came from.
func fileError(err error, field string) error {
	if err == nil {
		return nil
	}
	p := ""
	var we *workspacefs.Error
	if errors.As(err, &we) {
		p = we.Path
	}
	invalidf := func(msg string) error {
		return &Error{Kind: KindInvalid, Message: "invalid request", Details: []FieldError{{Field: field, Message: msg}}}
	}
	switch {
	case errors.Is(err, workspacefs.ErrOutside):
		return &Error{Kind: KindForbidden, Message: fmt.Sprintf("%s leads outside the workspace (through '..' or a symlink); refused", p)}
	case errors.Is(err, fs.ErrPermission):
		return &Error{Kind: KindForbidden, Message: fmt.Sprintf("permission denied on %s: it belongs to another user "+
			"(made inside a sandbox by a user rtemu cannot act for); change its mode inside the sandbox", p)}
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("file %s not found", p)}
	case errors.Is(err, fs.ErrExist):
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("%s already exists (or is a folder that is not empty)", p)}
	case errors.Is(err, workspacefs.ErrBadName):
		return invalidf(err.Error() + ": a name is one path element, without '/' or NUL, not '.' or '..', at most 255 bytes")
	case errors.Is(err, workspacefs.ErrBadPath):
		return invalidf(fmt.Sprintf("%q is not a valid workspace path", p))
	case errors.Is(err, workspacefs.ErrNotDir):
		return invalidf(fmt.Sprintf("%s (or a folder on its path) is not a folder", p))
	case errors.Is(err, workspacefs.ErrIsDir):
		return invalidf(fmt.Sprintf("%s is a folder", p))
	case errors.Is(err, workspacefs.ErrNotRegular):
		return invalidf(fmt.Sprintf("%s is not a regular file (a device, FIFO or socket); the file API does not read those", p))
	case errors.Is(err, workspacefs.ErrRoot):
		return invalidf("not allowed on the workspace root")
	case errors.Is(err, workspacefs.ErrIntoItself):
		return invalidf(fmt.Sprintf("%s cannot be moved or copied into itself", p))
	case errors.Is(err, workspacefs.ErrLoop):
		return invalidf(fmt.Sprintf("%s: too many levels of symbolic links", p))
	}
	return err
}

// openFolder finds a workspace and opens its folder, noting the access.
func (s *Service) openFolder(ctx context.Context, ref string) (*workspacefs.Folder, error) {
	w, err := s.findWorkspace(ctx, ref)
	if err != nil {
		return nil, err
	}
	f, err := workspacefs.Open(s.folderOf(w.ID))
	if err != nil {
		return nil, fmt.Errorf("open workspace %s folder: %w", w.ID, err)
	}
	if err := s.store.TouchWorkspace(ctx, w.ID, s.now()); err != nil {
		s.log.Warn("could not record a workspace access", "workspace", w.ID, "err", err)
	}
	return f, nil
}

// ListFiles lists a folder of a workspace.
func (s *Service) ListFiles(ctx context.Context, ref, dir string, showHidden bool) ([]FileEntry, error) {
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := f.List(dir, showHidden)
	return out, fileError(err, "path")
}

// FileInfo describes a file or folder with the size and counts of its tree.
func (s *Service) FileInfo(ctx context.Context, ref, p string) (FileEntry, FileUsage, error) {
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return FileEntry{}, FileUsage{}, err
	}
	defer f.Close()
	e, u, err := f.Usage(p)
	return e, u, fileError(err, "path")
}

// FileCreate is a create request: a file (with optional contents) or a
// folder.
type FileCreate struct {
	Name     string
	Type     string // file, folder or directory
	Contents *string
}

// CreateFile makes a file or folder inside the folder dir.
func (s *Service) CreateFile(ctx context.Context, ref, dir string, p FileCreate) (FileEntry, error) {
	var v invalid
	if err := workspacefs.ValidName(p.Name); err != nil {
		v.add("name", "%v: a name is one path element, without '/' or NUL, not '.' or '..', at most 255 bytes", err)
	}
	switch p.Type {
	case "file":
		if p.Contents != nil && len(*p.Contents) > MaxFileContents {
			v.add("contents", "must be at most %d bytes; upload bigger files", MaxFileContents)
		}
	case "folder", "directory":
		if p.Contents != nil {
			v.add("contents", "a folder has no contents")
		}
	default:
		v.add("type", "must be file, folder or directory")
	}
	if err := v.err(); err != nil {
		return FileEntry{}, err
	}
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return FileEntry{}, err
	}
	defer f.Close()
	var e FileEntry
	if p.Type == "file" {
		var contents []byte
		if p.Contents != nil {
			contents = []byte(*p.Contents)
		}
		e, err = f.CreateFile(dir, p.Name, contents)
	} else {
		e, err = f.Mkdir(dir, p.Name)
	}
	return e, fileError(err, "path")
}

// Upload is a file being uploaded into a workspace; see BeginUpload.
type Upload struct {
	u *workspacefs.Upload
	f *workspacefs.Folder
}

// BeginUpload starts an upload into the folder dir. The caller writes the
// bytes (they go to disk as they come), then calls Commit with the file's
// name, or Abort; either releases the upload.
func (s *Service) BeginUpload(ctx context.Context, ref, dir string) (*Upload, error) {
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return nil, err
	}
	u, err := f.BeginUpload(dir)
	if err != nil {
		f.Close()
		return nil, fileError(err, "path")
	}
	return &Upload{u: u, f: f}, nil
}

// Write appends to the upload.
func (u *Upload) Write(p []byte) (int, error) { return u.u.Write(p) }

// Commit puts the file in place under name, replacing a file of that name.
func (u *Upload) Commit(name string) (FileEntry, error) {
	defer u.f.Close()
	if err := workspacefs.ValidName(name); err != nil {
		u.u.Abort()
		return FileEntry{}, &Error{Kind: KindInvalid, Message: "invalid request", Details: []FieldError{{Field: "name",
			Message: fmt.Sprintf("%v: a name is one path element, without '/' or NUL, not '.' or '..', at most 255 bytes", err)}}}
	}
	e, err := u.u.Commit(name)
	return e, fileError(err, "name")
}

// Abort drops the upload; nothing is left behind.
func (u *Upload) Abort() {
	u.u.Abort()
	u.f.Close()
}

// FileChange is a PUT on one entry.
type FileChange struct {
	Operation string // rename, move, copy or write
	Target    string // rename: the new name; move, copy: the folder to put it in
	Contents  *string
}

// ChangeFile renames, moves, copies or writes the entry at p.
func (s *Service) ChangeFile(ctx context.Context, ref, p string, c FileChange) (FileEntry, error) {
	var v invalid
	switch c.Operation {
	case OpRename:
		if err := workspacefs.ValidName(c.Target); err != nil {
			v.add("target", "%v: the new name is one path element, without '/' or NUL", err)
		}
	case OpMove, OpCopy:
		if c.Target == "" {
			v.add("target", "is required: the folder to %s into (\"/\" for the root)", c.Operation)
		}
	case OpWrite:
		switch {
		case c.Contents == nil:
			v.add("contents", "is required for write")
		case len(*c.Contents) > MaxFileContents:
			v.add("contents", "must be at most %d bytes; upload bigger files", MaxFileContents)
		}
	case "":
		v.add("operation", "is required: rename, move, copy or write")
	default:
		v.add("operation", "must be rename, move, copy or write")
	}
	if err := v.err(); err != nil {
		return FileEntry{}, err
	}
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return FileEntry{}, err
	}
	defer f.Close()
	var e FileEntry
	switch c.Operation {
	case OpRename:
		e, err = f.Rename(p, c.Target)
	case OpMove:
		e, err = f.Move(p, c.Target)
	case OpCopy:
		e, err = f.Copy(p, c.Target)
	case OpWrite:
		e, err = f.Write(p, []byte(*c.Contents))
	}
	return e, fileError(err, "path")
}

func validIDs(v *invalid, ids []string) {
	switch {
	case len(ids) == 0:
		v.add("ids", "is required: a list of file ids (workspace paths like \"/src/a.txt\")")
	case len(ids) > MaxFileBatch:
		v.add("ids", "at most %d ids in one call (got %d)", MaxFileBatch, len(ids))
	}
	for i, id := range ids {
		if id == "" || strings.IndexByte(id, 0) >= 0 {
			v.add(fmt.Sprintf("ids[%d]", i), "must be a workspace path like \"/src/a.txt\"")
		}
	}
}

// ChangeFiles copies or moves several entries into one folder. It checks
// every id before changing anything; it stops at the first failure, and
// what was done until then stays done (as it would with one call each).
func (s *Service) ChangeFiles(ctx context.Context, ref, op string, ids []string, target string) ([]FileEntry, error) {
	var v invalid
	if op != OpMove && op != OpCopy {
		v.add("operation", "must be copy or move")
	}
	if target == "" {
		v.add("target", "is required: the folder to copy or move into (\"/\" for the root)")
	}
	validIDs(&v, ids)
	if err := v.err(); err != nil {
		return nil, err
	}
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, id := range ids {
		if _, err := f.Stat(id); err != nil {
			return nil, fileError(err, "ids")
		}
	}
	out := make([]FileEntry, 0, len(ids))
	for _, id := range ids {
		var e FileEntry
		if op == OpMove {
			e, err = f.Move(id, target)
		} else {
			e, err = f.Copy(id, target)
		}
		if err != nil {
			return out, fileError(err, "ids")
		}
		out = append(out, e)
	}
	return out, nil
}

// DeleteFiles deletes entries (folders with all they hold). If one id is
// missing or refused, nothing is deleted.
func (s *Service) DeleteFiles(ctx context.Context, ref string, ids []string) ([]string, error) {
	var v invalid
	validIDs(&v, ids)
	if err := v.err(); err != nil {
		return nil, err
	}
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := f.Remove(ids)
	return out, fileError(err, "ids")
}

// OpenFile opens a regular file of a workspace for reading; the caller
// closes it.
func (s *Service) OpenFile(ctx context.Context, ref, p string) (*os.File, FileEntry, error) {
	if p == "" {
		return nil, FileEntry{}, &Error{Kind: KindInvalid, Message: "invalid request",
			Details: []FieldError{{Field: "path", Message: "is required: the file's workspace path, like \"/src/a.txt\""}}}
	}
	f, err := s.openFolder(ctx, ref)
	if err != nil {
		return nil, FileEntry{}, err
	}
	defer f.Close()
	file, e, err := f.OpenFile(p)
	return file, e, fileError(err, "path")
}
