package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/workspacefs"
)

// Workspace is durable storage: a folder under the data dir that sandboxes
// mount and the file API reads and writes.
type Workspace struct {
	Seq            int64
	ID             string // a UUID, lower case
	Slug           string
	Name           string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastAccessedAt *time.Time
	// SizeBytes is the size of the files in the folder, measured when the
	// workspace is read (not stored).
	SizeBytes int64
}

// WorkspaceParams is a create request.
type WorkspaceParams struct {
	ID   string // "" = a new random UUID
	Name string
	Slug string // "" = made from the name
}

// StorageTotals is the storage line of a workspace list. rtemu sets no
// quota: Unlimited is true and QuotaBytes 0.
type StorageTotals struct {
	UsedBytes  int64
	QuotaBytes int64
	Unlimited  bool
}

// WorkspaceUse is one sandbox that mounts a workspace.
type WorkspaceUse struct {
	SandboxID string
	Name      string
	Status    Status
	Path      string
	ReadOnly  bool
}

// Store errors for workspaces.
var (
	ErrIDTaken   = errors.New("id taken")
	ErrSlugTaken = errors.New("slug taken")
)

// WorkspaceStore keeps workspace records. *store.Store implements it.
type WorkspaceStore interface {
	InsertWorkspace(ctx context.Context, w *Workspace) error
	GetWorkspace(ctx context.Context, id string) (*Workspace, error)
	WorkspaceBySlug(ctx context.Context, slug string) (*Workspace, error)
	ListWorkspaces(ctx context.Context) ([]*Workspace, error)
	RenameWorkspace(ctx context.Context, id, name string, at time.Time) (*Workspace, error)
	TouchWorkspace(ctx context.Context, id string, at time.Time) error
	DeleteWorkspace(ctx context.Context, id string) error
}

// Limits of workspace requests.
const (
	maxWorkspaceName = 100
	maxSlug          = 63
	// MaxFileBatch is the most ids one batch call takes, as upstream.
	MaxFileBatch = 250
	// MaxUploadBytes is the largest upload, as upstream (100 MB, read as MiB).
	MaxUploadBytes = 100 << 20
	// MaxFileContents bounds the text of a create or write call; the JSON
	// body holding it is capped at 1 MiB anyway.
	MaxFileContents = 1 << 20
)

var slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// workspaces is the service's workspace state.
type workspaces struct {
	// dir holds one folder per workspace, named by id; "" when the service
	// has no data dir (then workspaces are unavailable).
	dir string
	// mu orders "is this workspace mounted?" against "mount it": a delete
	// and a create that mounts the same workspace never interleave.
	mu sync.Mutex
	// shared says whether the engine sees dir at the same path; nil until
	// found out (at the first create with mounts). Under mu.
	shared *bool
}

// trashPrefix names folders of deleted workspaces still being removed.
const trashPrefix = ".trash-"

// startWorkspaces makes the workspaces folder and finishes deletes that a
// stop interrupted.
func (s *Service) startWorkspaces() error {
	if s.ws.dir == "" {
		return nil
	}
	s.AddResetHook(s.removeWorkspaceFolders)
	if err := os.MkdirAll(s.ws.dir, 0o755); err != nil {
		return fmt.Errorf("workspaces folder: %w", err)
	}
	ents, err := os.ReadDir(s.ws.dir)
	if err != nil {
		return fmt.Errorf("workspaces folder: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), trashPrefix) {
			if err := os.RemoveAll(filepath.Join(s.ws.dir, e.Name())); err != nil {
				s.log.Warn("could not remove a deleted workspace's files", "folder", e.Name(), "err", err)
			}
		}
	}
	return nil
}

func (s *Service) folderOf(id string) string { return filepath.Join(s.ws.dir, id) }

func (s *Service) workspacesReady() error {
	if s.ws.dir == "" {
		return &Error{Kind: KindUnavailable, Message: "workspaces need a data dir (--data-dir)"}
	}
	return nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// slugFrom makes a slug of a name: lower-case letters and digits, the rest
// turned into single dashes.
func slugFrom(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			if b.Len() >= maxSlug-4 {
				break
			}
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "workspace"
	}
	return b.String()
}

func validateWorkspaceName(v *invalid, name string) {
	validText(v, "name", name, maxWorkspaceName)
}

// CreateWorkspace records a workspace and makes its folder. A client may
// choose the id (an emulator extension, so recorded requests that name a
// workspace can be replayed).
func (s *Service) CreateWorkspace(ctx context.Context, p WorkspaceParams) (*Workspace, error) {
	if err := s.workspacesReady(); err != nil {
		return nil, err
	}
	var v invalid
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		v.add("name", "is required")
	} else {
		validateWorkspaceName(&v, p.Name)
	}
	if p.Slug != "" && (len(p.Slug) > maxSlug || !slugPattern.MatchString(p.Slug)) {
		v.add("slug", "must be at most %d lower-case letters, digits and single dashes, like \"docs-project\"", maxSlug)
	}
	if p.ID != "" && !uuidPattern.MatchString(p.ID) {
		v.add("id", "must be a UUID")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	now := s.now()
	w := &Workspace{ID: strings.ToLower(p.ID), Name: p.Name, Slug: p.Slug, CreatedAt: now, UpdatedAt: now}
	if w.ID == "" {
		w.ID = newUUID()
	}
	// An existing folder with no record (a data dir restored by hand, say)
	// is adopted with its files rather than refused.
	folder := s.folderOf(w.ID)
	made := false
	if err := os.Mkdir(folder, 0o755); err == nil {
		made = true
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("make workspace folder: %w", err)
	}
	err := s.insertWorkspace(ctx, w, p.Slug == "")
	if err != nil {
		if made {
			_ = os.Remove(folder)
		}
		return nil, err
	}
	size, _ := workspacefs.TreeSize(folder)
	w.SizeBytes = size
	s.Publish(Change{Kind: "workspace", ID: w.ID})
	return w, nil
}

// insertWorkspace writes the record; a slug made from the name gets a
// number when it is taken, a chosen one is a conflict.
func (s *Service) insertWorkspace(ctx context.Context, w *Workspace, madeSlug bool) error {
	base := w.Slug
	if madeSlug {
		base = slugFrom(w.Name)
	}
	w.Slug = base
	for n := 2; ; n++ {
		err := s.store.InsertWorkspace(ctx, w)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrIDTaken):
			return conflict("a workspace with id %s already exists", w.ID)
		case errors.Is(err, ErrSlugTaken) && madeSlug && n < 1000:
			w.Slug = fmt.Sprintf("%s-%d", base, n)
		case errors.Is(err, ErrSlugTaken):
			return conflict("a workspace with slug %q already exists", w.Slug)
		default:
			return err
		}
	}
}

// findWorkspace finds a workspace by id or by slug.
func (s *Service) findWorkspace(ctx context.Context, ref string) (*Workspace, error) {
	if err := s.workspacesReady(); err != nil {
		return nil, err
	}
	var (
		w   *Workspace
		err error
	)
	if uuidPattern.MatchString(ref) {
		w, err = s.store.GetWorkspace(ctx, strings.ToLower(ref))
	} else {
		w, err = s.store.WorkspaceBySlug(ctx, ref)
	}
	if errors.Is(err, ErrNoRecord) {
		return nil, notFound("Workspace")
	}
	return w, err
}

// GetWorkspace returns a workspace (by id or slug) with its size.
func (s *Service) GetWorkspace(ctx context.Context, ref string) (*Workspace, error) {
	w, err := s.findWorkspace(ctx, ref)
	if err != nil {
		return nil, err
	}
	w.SizeBytes, _ = workspacefs.TreeSize(s.folderOf(w.ID))
	return w, nil
}

// ListWorkspaces returns every workspace, newest first, with their sizes
// and the total.
func (s *Service) ListWorkspaces(ctx context.Context) ([]*Workspace, StorageTotals, error) {
	if err := s.workspacesReady(); err != nil {
		return nil, StorageTotals{}, err
	}
	ws, err := s.store.ListWorkspaces(ctx)
	if err != nil {
		return nil, StorageTotals{}, err
	}
	tot := StorageTotals{Unlimited: true}
	for _, w := range ws {
		w.SizeBytes, _ = workspacefs.TreeSize(s.folderOf(w.ID))
		tot.UsedBytes += w.SizeBytes
	}
	return ws, tot, nil
}

// StorageTotals is the storage line alone.
func (s *Service) StorageTotals(ctx context.Context) (StorageTotals, error) {
	_, tot, err := s.ListWorkspaces(ctx)
	return tot, err
}

// RenameWorkspace changes a workspace's name (its slug and id stay).
func (s *Service) RenameWorkspace(ctx context.Context, ref, name string) (*Workspace, error) {
	var v invalid
	name = strings.TrimSpace(name)
	if name == "" {
		v.add("name", "is required")
	} else {
		validateWorkspaceName(&v, name)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	w, err := s.findWorkspace(ctx, ref)
	if err != nil {
		return nil, err
	}
	w, err = s.store.RenameWorkspace(ctx, w.ID, name, s.now())
	if errors.Is(err, ErrNoRecord) {
		return nil, notFound("Workspace")
	}
	if err != nil {
		return nil, err
	}
	w.SizeBytes, _ = workspacefs.TreeSize(s.folderOf(w.ID))
	s.Publish(Change{Kind: "workspace", ID: w.ID})
	return w, nil
}

// mountedBy lists the sandboxes that mount a workspace and still have (or
// may still get) a container: every sandbox but destroyed and failed ones.
func (s *Service) mountedBy(ctx context.Context, id string) ([]WorkspaceUse, error) {
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	out := []WorkspaceUse{}
	for _, sb := range live {
		if sb.Status == StatusFailed {
			continue
		}
		for _, m := range sb.Mounts {
			if m.WorkspaceID == id {
				out = append(out, WorkspaceUse{SandboxID: sb.ID, Name: sb.Name, Status: sb.Status, Path: m.Path, ReadOnly: m.ReadOnly})
			}
		}
	}
	return out, nil
}

// WorkspaceUsage says which sandboxes mount a workspace.
func (s *Service) WorkspaceUsage(ctx context.Context, ref string) (*Workspace, []WorkspaceUse, error) {
	w, err := s.findWorkspace(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	uses, err := s.mountedBy(ctx, w.ID)
	return w, uses, err
}

// DeleteWorkspace removes a workspace and its files. A workspace that a
// sandbox mounts is refused (WORKSPACE_IN_USE) unless force is set; then
// those sandboxes keep running over an emptied, deleted folder.
func (s *Service) DeleteWorkspace(ctx context.Context, ref string, force bool) (*Workspace, error) {
	w, err := s.findWorkspace(ctx, ref)
	if err != nil {
		return nil, err
	}
	s.ws.mu.Lock()
	defer s.ws.mu.Unlock()
	uses, err := s.mountedBy(ctx, w.ID)
	if err != nil {
		return nil, err
	}
	if len(uses) > 0 && !force {
		ids := make([]string, 0, len(uses))
		for _, u := range uses {
			ids = append(ids, u.SandboxID)
		}
		return nil, &Error{Kind: KindConflict, Code: "WORKSPACE_IN_USE",
			Message: fmt.Sprintf("workspace %s is mounted by sandbox %s; destroy them first or delete with ?force=true",
				w.ID, strings.Join(ids, ", "))}
	}
	// The folder is moved aside first (one rename: nothing is lost if the
	// record cannot be deleted), then the record goes, then the files.
	folder := s.folderOf(w.ID)
	trash := filepath.Join(s.ws.dir, trashPrefix+w.ID+"-"+newUUID()[:8])
	if err := os.Rename(folder, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("delete workspace folder: %w", err)
	}
	if err := s.store.DeleteWorkspace(ctx, w.ID); err != nil && !errors.Is(err, ErrNoRecord) {
		_ = os.Rename(trash, folder)
		return nil, err
	}
	// os.RemoveAll removes symlinks, never what they point to.
	if err := os.RemoveAll(trash); err != nil {
		s.log.Warn("could not remove a deleted workspace's files; the next start retries", "workspace", w.ID, "err", err)
	}
	if len(uses) > 0 {
		s.log.Info("workspace force-deleted while mounted", "workspace", w.ID, "sandboxes", len(uses))
	}
	s.Publish(Change{Kind: "workspace", ID: w.ID})
	return w, nil
}

// checkMounts makes sure every mounted workspace exists, and writes their
// ids in canonical (lower-case) form. The caller holds s.ws.mu until the
// sandbox is recorded.
func (s *Service) checkMounts(ctx context.Context, mounts []Mount) error {
	if len(mounts) == 0 {
		return nil
	}
	if err := s.workspacesReady(); err != nil {
		return err
	}
	var v invalid
	for i := range mounts {
		m := &mounts[i]
		w, err := s.store.GetWorkspace(ctx, strings.ToLower(m.WorkspaceID))
		if errors.Is(err, ErrNoRecord) {
			v.addFix(RemedyCreateWorkspace, fmt.Sprintf("mounts[%d].workspaceId", i), "workspace %s not found", m.WorkspaceID)
			continue
		}
		if err != nil {
			return err
		}
		m.WorkspaceID = w.ID
	}
	return v.err()
}

// checkEngineSeesWorkspaces refuses mounts when the engine does not see the
// workspace folders at their host paths (a remote engine, a VM engine
// without the folder shared): the bind mount would show an empty folder of
// the engine's, or fail. It asks the engine once; a failure to ask (the
// image is not there yet, say) is left to the create itself. The caller
// holds s.ws.mu.
func (s *Service) checkEngineSeesWorkspaces(ctx context.Context, image string) error {
	if !s.caps.SharedFolders {
		return &Error{Kind: KindInvalid, Message: "invalid request", Details: []FieldError{{Field: "mounts", Message: fmt.Sprintf(
			"%s cannot share host folders with sandboxes, so workspaces cannot be mounted here; sandboxes without mounts work as they are",
			s.theEngine())}}}
	}
	if s.ws.shared == nil {
		ok, err := s.engine.SharesFolder(ctx, s.ws.dir, image, s.helperLabels())
		if err != nil {
			s.log.Debug("could not tell whether the engine sees the workspace folders", "err", err)
			return nil
		}
		s.ws.shared = &ok
		s.log.Info(s.theEngine()+" sees rtemu's workspace folders", "sees", ok, "dir", s.ws.dir)
	}
	if *s.ws.shared {
		return nil
	}
	return &Error{Kind: KindInvalid, Message: "invalid request", Details: []FieldError{{Field: "mounts", Message: fmt.Sprintf(
		"workspace mounts need an engine that sees rtemu's data dir at the same path, and %s does not see %s "+
			"(a remote engine, or a VM engine without that folder shared). Share the folder with the engine at the same path, "+
			"point --data-dir at a folder it shares, or run rtemu where the engine runs; sandboxes without mounts work as they are",
		s.theEngine(), s.ws.dir)}}}
}

// WorkspacesShared says whether the engine was found to see the workspace
// folders: known is false until a create with mounts has asked.
func (s *Service) WorkspacesShared() (shared, known bool) {
	s.ws.mu.Lock()
	defer s.ws.mu.Unlock()
	if s.ws.shared == nil {
		return false, false
	}
	return *s.ws.shared, true
}

// containerMounts are a sandbox's workspace folders as bind mounts.
func (s *Service) containerMounts(sb *Sandbox) ([]engine.Mount, error) {
	out := make([]engine.Mount, 0, len(sb.Mounts))
	for _, m := range sb.Mounts {
		folder := s.folderOf(m.WorkspaceID)
		if fi, err := os.Stat(folder); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("workspace %s (mounted at %s) was deleted", m.WorkspaceID, m.Path)
		}
		out = append(out, engine.Mount{Source: folder, Target: m.Path, ReadOnly: m.ReadOnly})
	}
	return out, nil
}

// DeleteAllWorkspaces deletes every workspace and its files, mounted or not
// (for a reset of the emulator; destroy the sandboxes first). It returns how
// many went.
func (s *Service) DeleteAllWorkspaces(ctx context.Context) (int, error) {
	if s.ws.dir == "" {
		return 0, nil
	}
	ws, err := s.store.ListWorkspaces(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, w := range ws {
		if _, err := s.DeleteWorkspace(ctx, w.ID, true); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// removeWorkspaceFolders removes every workspace's files; Reset runs it
// after the records are gone.
func (s *Service) removeWorkspaceFolders(ctx context.Context) error {
	ents, err := os.ReadDir(s.ws.dir)
	if err != nil {
		return fmt.Errorf("workspaces folder: %w", err)
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(s.ws.dir, e.Name())))
	}
	return errors.Join(errs...)
}
