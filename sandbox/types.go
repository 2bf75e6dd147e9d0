// Package sandbox is rtemu's lifecycle service: it owns sandboxes and their
// state transitions. The HTTP API and the SSH gateway both call it; it alone
// talks to the store and the container engine, and it alone holds the rules.
package sandbox

import (
	"encoding/json"
	"io"
	"time"
)

// Status is where a sandbox is in its lifecycle.
type Status string

const (
	StatusCreating   Status = "creating"
	StatusRunning    Status = "running"
	StatusPausing    Status = "pausing"
	StatusPaused     Status = "paused"
	StatusResuming   Status = "resuming"
	StatusDestroying Status = "destroying"
	StatusDestroyed  Status = "destroyed"
	StatusFailed     Status = "failed"
	StatusError      Status = "error"
)

// UpstreamOnlyStatuses are values of the hosted API's status enum that
// rtemu's lifecycle never reaches: a list filtered by them is empty.
var UpstreamOnlyStatuses = []Status{"pending", "stopped", "orphaned", "suspected_missing"}

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusCreating, StatusRunning, StatusPausing, StatusPaused, StatusResuming,
	StatusDestroying, StatusDestroyed, StatusFailed, StatusError}

// transitions is the state machine: the statuses each status may move to.
// Every status change goes through Service.transition, which checks it here.
// running ↔ paused directly records a pause or unpause the engine was seen
// doing outside rtemu; pausing → running and resuming → paused undo an
// engine call that failed. error → running or paused heals a record that
// was put in error while its container went on (reconcile finds it running).
var transitions = map[Status][]Status{
	StatusCreating:   {StatusRunning, StatusFailed, StatusDestroying, StatusError},
	StatusRunning:    {StatusPausing, StatusPaused, StatusDestroying, StatusError},
	StatusPausing:    {StatusPaused, StatusRunning, StatusDestroying, StatusError},
	StatusPaused:     {StatusResuming, StatusRunning, StatusDestroying, StatusError},
	StatusResuming:   {StatusRunning, StatusPaused, StatusDestroying, StatusError},
	StatusDestroying: {StatusDestroyed},
	StatusFailed:     {StatusDestroying},
	StatusError:      {StatusDestroying, StatusRunning, StatusPaused},
	StatusDestroyed:  {},
}

func canTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Resources is what a sandbox asked for. Memory and Disk keep the caller's
// spelling ("4GB", "1024MiB"); the byte counts are derived from them.
type Resources struct {
	VCPUs  int
	Memory string
	Disk   string
}

// Mount places a workspace inside a sandbox.
type Mount struct {
	WorkspaceID string
	Path        string
	ReadOnly    bool
}

// Sandbox is one sandbox record.
type Sandbox struct {
	// Seq orders sandboxes by creation; cursors are built from it.
	Seq              int64
	ID               string
	Name             string // "" = no name
	Template         string
	Image            string // the image the template named at create
	Status           Status
	Tags             []string
	Resources        Resources
	Env              map[string]string
	Mounts           []Mount
	Metadata         json.RawMessage // nil = none
	ProjectID        string          // "" = none
	IdleTimeout      int             // seconds; 0 = never
	SSHKeys          []string        // public keys or key ids
	SSHKeysSet       bool            // false: every registered key is allowed
	RootPasswordHash string
	Error            string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	PausedAt         *time.Time
	// PausedBy says who paused a paused sandbox: PausedForIdleness when the
	// idle timer did ("" for a user's pause or one seen in the engine).
	PausedBy       string
	ResumedAt      *time.Time
	DestroyedAt    *time.Time
	LastActivityAt *time.Time
	// IP is the container's address as the sandbox sees it (its own
	// interface), read from the engine once the container started; "" when
	// unknown.
	IP string
	// Progress says, while the sandbox is creating, how far the pull or
	// build of its image is ("pulling IMAGE: 3 of 7 layers"); "" otherwise.
	Progress string
	// Container is the container's name where it is not rtemu-<id>: a
	// sandbox of a state archive, whose id may be another rtemu's on the
	// same engine too (the original's, or another load's of the archive).
	Container string
}

// Address is the sandbox's own address while it has a container ("" before
// the container started, and once it is failed, broken or destroyed).
func (s *Sandbox) Address() string {
	switch s.Status {
	case StatusRunning, StatusPausing, StatusPaused, StatusResuming:
		return s.IP
	}
	return ""
}

// HasWritableWorkspaceMount says whether a workspace is mounted writable.
func (s *Sandbox) HasWritableWorkspaceMount() bool {
	for _, m := range s.Mounts {
		if !m.ReadOnly {
			return true
		}
	}
	return false
}

// ContainerName is the engine's name for the sandbox's container. It is
// derived from the id, so no container id has to be stored.
func (s *Sandbox) ContainerName() string {
	if s.Container != "" {
		return s.Container
	}
	return "rtemu-" + s.ID
}

// SSHAuthMethod says how the sandbox may be reached over SSH.
// everyRegisteredKey says that the sandbox takes every registered key (it
// was created without sshKeys) and that at least one is registered; the
// service knows that (Service.SSHAuthMethod).
func (s *Sandbox) SSHAuthMethod(everyRegisteredKey bool) string {
	key := len(s.SSHKeys) > 0 || everyRegisteredKey
	pw := s.RootPasswordHash != ""
	switch {
	case key && pw:
		return "key+password"
	case key:
		return "key"
	case pw:
		return "password"
	}
	return "none"
}

// Event is one entry of a sandbox's activity feed.
type Event struct {
	Seq       int64 // orders events; cursors are built from it
	ID        string
	SandboxID string // "" for an event about no sandbox
	// ResourceType and ResourceID are what the event is about: "sandbox"
	// and the sandbox's id when empty; "secret" and its name.
	ResourceType string
	ResourceID   string
	Type         string // created, running, failed, paused, resumed, exec, destroyed, secret.revealed, ...
	Severity     string // info, warning, error
	Title        string
	Attributes   map[string]any
	CreatedAt    time.Time
}

// CreateParams is a create request, already decoded from the wire.
type CreateParams struct {
	Template     string
	Name         string
	Tags         []string
	VCPUs        *int
	Memory       *string
	Disk         *string
	Env          map[string]string
	IdleTimeout  *int
	Mounts       []Mount
	SSHKeys      []string
	SSHKeysSet   bool
	RootPassword *string
	Metadata     json.RawMessage
	ProjectID    *string
}

// UpdateParams is a PATCH: nil fields are left alone; a set field holding ""
// clears the value.
type UpdateParams struct {
	Name      *string
	ProjectID *string
}

// ListFilter selects sandboxes for List.
type ListFilter struct {
	Statuses        []Status // empty: every status but destroyed
	Tags            []string // all must match
	Template        string
	ExcludeTemplate string
	ProjectID       string // "" = any project
	Limit           int    // 1..MaxListLimit
	Cursor          string // from a previous page's NextCursor
}

// Page is one page of a list.
type Page[T any] struct {
	Items      []T
	HasMore    bool
	NextCursor string
}

// ExecParams is one command to run.
type ExecParams struct {
	Command string
	Cwd     string
	Env     map[string]string
	Timeout time.Duration
	// Secrets names secrets whose values the command gets as environment
	// variables of the same names (over Env).
	Secrets []string
	// Stdout and Stderr, when set, also receive the output as it comes
	// (streaming exec); Started is called once the command is about to
	// run, every check passed.
	Stdout, Stderr io.Writer
	Started        func()
}

// ExecResult is what a finished command gave.
type ExecResult struct {
	// Stdout and Stderr are the first MaxExecOutput bytes of each (empty
	// for a streaming exec, whose output went to ExecParams' writers). The
	// caller Closes the result once it has answered.
	Stdout, Stderr *Output
	ExitCode       int
	TimedOut       bool
	Duration       time.Duration
}

// Close gives back what the result's output holds.
func (r ExecResult) Close() {
	for _, o := range []*Output{r.Stdout, r.Stderr} {
		if o != nil {
			_ = o.Close()
		}
	}
}

// Template maps a template name to an image.
type Template struct {
	Name  string
	Image string
	// Recipe names the rtemu recipe Image is built from ("" for any other
	// image): a missing image is then built, not pulled.
	Recipe string
	// Fallback, for a recipe template, is the image used (pulled if need
	// be) while the recipe's image is not built: base-ubuntu falls back to
	// ubuntu:24.04, the contract's default, so a first create pulls rather
	// than builds for minutes. "" builds the recipe at the first create.
	Fallback string
}
