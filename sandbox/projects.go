package sandbox

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Project groups sandboxes, as on the hosted service: a filter and a label,
// nothing more (permissions there stay with the organisation).
type Project struct {
	Seq       int64
	ID        string // a UUID
	Name      string
	Color     string // #rrggbb
	IsDefault bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// The default project, made with the store.
const (
	DefaultProjectName  = "Default"
	DefaultProjectColor = "#6366f1"
)

// ErrProjectInUse is the store's answer to deleting a project that live
// sandboxes are assigned to.
var ErrProjectInUse = errors.New("project in use")

// ProjectStore keeps projects. *store.Store implements it.
type ProjectStore interface {
	InsertProject(ctx context.Context, p *Project) error
	GetProject(ctx context.Context, id string) (*Project, error)
	ListProjects(ctx context.Context) ([]*Project, error)
	UpdateProject(ctx context.Context, id string, fn func(*Project) error) (*Project, error)
	// DeleteProject deletes a project; see store.DeleteProject.
	DeleteProject(ctx context.Context, id string, unassign bool) (users []string, err error)
}

// projects orders the checks that a sandbox's projectId names a project
// against the deletes of projects: a sandbox is never assigned to a project
// deleted meanwhile.
type projects struct {
	mu sync.RWMutex
}

var colorPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

const maxProjectName = 100

// ProjectParams creates or changes a project; nil fields are left alone
// (a create takes the defaults).
type ProjectParams struct {
	Name  *string
	Color *string
}

func validateProject(p ProjectParams, create bool) error {
	var v invalid
	switch {
	case p.Name != nil:
		validText(&v, "name", strings.TrimSpace(*p.Name), maxProjectName)
	case create:
		v.add("name", "is required")
	}
	if p.Color != nil && !colorPattern.MatchString(*p.Color) {
		v.add("color", "must be a colour written #rrggbb")
	}
	return v.err()
}

// CreateProject makes a project.
func (s *Service) CreateProject(ctx context.Context, p ProjectParams) (*Project, error) {
	if err := validateProject(p, true); err != nil {
		return nil, err
	}
	now := s.now()
	pr := &Project{ID: newUUID(), Name: strings.TrimSpace(*p.Name), Color: DefaultProjectColor, CreatedAt: now, UpdatedAt: now}
	if p.Color != nil {
		pr.Color = strings.ToLower(*p.Color)
	}
	if err := s.store.InsertProject(ctx, pr); err != nil {
		return nil, err
	}
	s.Publish(Change{Kind: "project", ID: pr.ID})
	return pr, nil
}

// GetProject finds a project by id.
func (s *Service) GetProject(ctx context.Context, id string) (*Project, error) {
	if !uuidPattern.MatchString(id) {
		return nil, notFound("Project")
	}
	p, err := s.store.GetProject(ctx, strings.ToLower(id))
	if errors.Is(err, ErrNoRecord) {
		return nil, notFound("Project")
	}
	return p, err
}

// ListProjects lists every project, the default first, then oldest first.
func (s *Service) ListProjects(ctx context.Context) ([]*Project, error) {
	return s.store.ListProjects(ctx)
}

// UpdateProject renames or recolours a project.
func (s *Service) UpdateProject(ctx context.Context, id string, p ProjectParams) (*Project, error) {
	if err := validateProject(p, false); err != nil {
		return nil, err
	}
	cur, err := s.GetProject(ctx, id)
	if err != nil {
		return nil, err
	}
	out, err := s.store.UpdateProject(ctx, cur.ID, func(x *Project) error {
		if p.Name != nil {
			x.Name = strings.TrimSpace(*p.Name)
		}
		if p.Color != nil {
			x.Color = strings.ToLower(*p.Color)
		}
		x.UpdatedAt = s.now()
		return nil
	})
	if errors.Is(err, ErrNoRecord) {
		return nil, notFound("Project")
	}
	if err == nil {
		s.Publish(Change{Kind: "project", ID: out.ID})
	}
	return out, err
}

// DeleteProject deletes a project. One that sandboxes (not destroyed) are
// assigned to is a conflict naming them, unless force, which unassigns
// them. The default project stays.
func (s *Service) DeleteProject(ctx context.Context, id string, force bool) (*Project, error) {
	p, err := s.GetProject(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.IsDefault {
		return nil, conflict("project %s is the default project and cannot be deleted", p.ID)
	}
	s.projs.mu.Lock()
	defer s.projs.mu.Unlock()
	users, err := s.store.DeleteProject(ctx, p.ID, force)
	switch {
	case errors.Is(err, ErrProjectInUse):
		return nil, &Error{Kind: KindConflict, Code: "PROJECT_IN_USE",
			Message: "project " + p.ID + " is assigned to sandboxes " + strings.Join(users, ", ") + "; unassign them or delete with ?force=true"}
	case errors.Is(err, ErrNoRecord):
		return nil, notFound("Project")
	case err != nil:
		return nil, err
	}
	for _, id := range users {
		s.Publish(Change{Kind: "sandbox", ID: id})
	}
	s.Publish(Change{Kind: "project", ID: p.ID})
	return p, nil
}

// checkProject says whether a sandbox may be assigned to a project: it must
// exist. The caller holds s.projs.mu for reading until the sandbox is
// written.
func (s *Service) checkProject(ctx context.Context, id string) error {
	if _, err := s.store.GetProject(ctx, strings.ToLower(id)); err != nil {
		if errors.Is(err, ErrNoRecord) {
			return &Error{Kind: KindInvalid, Message: "invalid request", Details: []FieldError{{
				Field: "projectId", Message: "no project with id " + id, Remedy: RemedyListProjects}}}
		}
		return err
	}
	return nil
}
