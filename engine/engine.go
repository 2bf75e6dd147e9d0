// Package engine is the contract between rtemu's lifecycle service and a
// container engine: the interface (Engine), the values that cross it and the
// errors the service acts on. The engines live beside it — the Docker engine
// (engine/docker) and the in-memory fake (engine/fake) — and
// engine/enginetest is the one conformance suite they all pass (see
// docs/engines.md).
//
// Nothing here is Docker's: an engine maps its own states, events and
// errors onto these.
package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// Engine is what the service needs of a container engine, in the service's
// words (package engine holds the values and errors that cross it).
// docker.Engine (Docker) and fake.Engine (in memory) implement
// it, and engine/enginetest is the one conformance suite both pass (see
// docs/engines.md).
type Engine interface {
	// Capabilities says what this engine can do; the service reads it
	// once, at its start, instead of assuming.
	Capabilities() Capabilities
	Ping(ctx context.Context) (Info, error)
	ImagePresent(ctx context.Context, ref string) (bool, error)
	Pull(ctx context.Context, ref string, progress func(string)) error
	Create(ctx context.Context, spec ContainerSpec) error
	Start(ctx context.Context, name string) error
	Pause(ctx context.Context, name string) error
	Unpause(ctx context.Context, name string) error
	Remove(ctx context.Context, name string) error
	Inspect(ctx context.Context, name string) (State, error)
	List(ctx context.Context, labels map[string]string) ([]Container, error)
	Watch(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error)
	Exec(ctx context.Context, name string, spec ExecSpec) (int, error)
	DialPort(ctx context.Context, name string, port int) (net.Conn, error)
	// SharesFolder reports whether the engine sees a host folder at the
	// same path (bind mounts of workspaces need it).
	SharesFolder(ctx context.Context, dir, image string, labels map[string]string) (bool, error)
	Stats(ctx context.Context, name string) (Stats, error)
	UpdateLimits(ctx context.Context, name string, nanoCPUs, memoryBytes int64) error
	// DiskLimits tells whether the engine enforces a container's disk
	// size; DiskUsed measures a container's files.
	DiskLimits(ctx context.Context, image string, labels map[string]string) (DiskLimits, error)
	DiskUsed(ctx context.Context, name string) (int64, error)
	// Snapshot captures a container's files (its image plus what was
	// written to it; bind mounts and volumes left out) as an image named
	// ref, which Create can use. Running and paused containers alike; a
	// running one is frozen for the moment of the capture. Labels go on
	// the image.
	Snapshot(ctx context.Context, name, ref string, labels map[string]string) error
	// SaveImages writes the images as one tar archive (layers they share
	// once; opts.Without's left out); LoadImages reads such an archive
	// back into the engine, where its images then have the same refs (an
	// archive saved without some images' layers loads where those images
	// are). RemoveImage removes an image (its ref); a missing one is no
	// error. Without Capabilities.Snapshot all four are ErrUnsupported.
	SaveImages(ctx context.Context, refs []string, opts SaveOptions, w io.Writer) error
	LoadImages(ctx context.Context, r io.Reader) error
	RemoveImage(ctx context.Context, ref string) error
}

// SaveOptions are SaveImages' choices.
type SaveOptions struct {
	// Without names images (by ref) whose layers the archive leaves out
	// where the saved images are built on them: the engine that loads it
	// must have those images. One the saved images do not build on costs
	// nothing.
	Without []string
	// Dir is a folder the engine may write a copy of the archive to while
	// it works (Without needs one on Docker); "" for the system's.
	Dir string
}

// Capabilities says what an engine can do. The service reads it instead of
// assuming one engine's ways (Nomad's task-driver Capabilities is the
// model): what an engine cannot do, it says so, and the service refuses the
// request clearly or leaves the feature off; it never fakes it. Where only
// the running engine can tell (whether it sees rtemu's folders, whether its
// storage takes a disk size), the capability says the engine can, and a
// method of the contract answers at run time (SharesFolder, DiskLimits).
type Capabilities struct {
	// Name is the engine in users' words, as messages say it ("the Docker
	// engine is not reachable"): "Docker", "Kubernetes", "fake".
	Name string
	// Pause: Pause and Unpause freeze and thaw every process of a
	// container, memory kept. Without it, pause and resume are refused
	// (a conflict naming the engine) and idle sandboxes are never paused.
	Pause bool
	// SharedFolders: the engine can bind a host folder into a container
	// (workspace mounts); SharesFolder says whether it sees rtemu's.
	// Without it, a create with mounts is refused at once.
	SharedFolders bool
	// DiskQuota: the engine can hold a container to a disk size
	// (ContainerSpec.DiskBytes); DiskLimits says whether its storage does.
	// Without it, the service never asks and watches disks instead.
	DiskQuota bool
	// PeerNames: containers on a shared network reach each other by the
	// names in ContainerSpec.Aliases. Without it, no aliases are given.
	PeerNames bool
	// UpdateLimits: a running container's CPU and memory limits can be
	// changed. The warm pool fits a pooled container to a create with it,
	// and is off without it.
	UpdateLimits bool
	// ImageBuild: the engine builds images from recipes (templates with a
	// recipe); without it they must be built elsewhere and named.
	ImageBuild bool
	// AgentLink: commands and port connections reach the sandbox's exec
	// agent by a socket in a folder shared with the container, without a
	// round trip through the engine's API.
	AgentLink bool
	// CPUsCappedToHost: the engine refuses a CPU limit above its host's
	// CPUs (Info.CPUs), so the service clamps vCPUs to them (the sandbox
	// still reports what was asked for).
	CPUsCappedToHost bool
	// StopsContainersWhenDown: when the engine stops or restarts, it ends
	// its containers first, then stops answering. A container that ended
	// just before the engine went away was ended by the engine, and its
	// sandbox's error says so.
	StopsContainersWhenDown bool
	// Snapshot: the engine captures a container's file system as an image
	// and saves and loads images as archives (Snapshot, SaveImages,
	// LoadImages, RemoveImage), which is what a state archive of rtemu
	// holds of each sandbox. Without it, a state with sandboxes is refused,
	// naming each sandbox it cannot capture; records alone still save.
	Snapshot bool

	// ExecSlots is how many commands of one sandbox run at once before the
	// next waits (a second at most) for one to end: the engine keeps that
	// many started command channels per container, and one more costs an
	// engine round trip. 0: commands are not paced.
	ExecSlots int
	// ProvisionSlots bounds the containers created and started at once: the
	// engine goes no faster with more, and its other calls slow down.
	// 0: unbounded.
	ProvisionSlots int
	// AgentIdleLimit is how long the engine keeps an unused exec agent of a
	// container; the warm pool runs a command on its idle containers well
	// before, so a sandbox's first command finds one started. 0: nothing
	// to keep warm.
	AgentIdleLimit time.Duration
}

// The errors the service tells apart. An engine wraps its own failures so
// that errors.Is finds these.
var (
	// ErrNotFound: the container or image does not exist.
	ErrNotFound = errors.New("not found in the engine")
	// ErrNotRunning: the container exists but is paused or stopped, so it
	// cannot run a command or take a connection.
	ErrNotRunning = errors.New("container is not running")
	// ErrNameInUse: a container of that name exists already (a conflict).
	ErrNameInUse = errors.New("container name in use")
	// ErrUnavailable: the engine does not answer.
	ErrUnavailable = errors.New("container engine unavailable")
	// ErrUnsupported: the engine cannot do this (its Capabilities say so).
	ErrUnsupported = errors.New("not supported by this engine")
)

// Info describes the engine the service talks to.
type Info struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	OS         string `json:"os"`
	Host       string `json:"host"`
	CPUs       int    `json:"cpus"`
}

// ContainerSpec is what a sandbox container is made from.
type ContainerSpec struct {
	Name     string
	Image    string
	Hostname string
	// Aliases are names other containers on the sandboxes' network may
	// use for this one (only a shared network lets them connect).
	Aliases     []string
	Labels      map[string]string
	Env         []string
	NanoCPUs    int64
	MemoryBytes int64
	PidsLimit   int64
	// WorkingDir is created at start when the image lacks it, which is how
	// every sandbox gets an empty /workspace.
	WorkingDir string
	// Mounts are host folders bound into the container (workspaces).
	Mounts []Mount
	// DiskBytes caps the container's files, on an engine that enforces it
	// (DiskLimits); 0 leaves them unbounded.
	DiskBytes int64
	// HelperLabels go on any short-lived container the engine makes for
	// this one, so that whoever reconciles the owner's containers removes a
	// helper a kill left.
	HelperLabels map[string]string
}

// Mount binds a host folder into a container. The engine must see the
// folder at the same path as rtemu (Engine.SharesFolder says whether it
// does).
type Mount struct {
	Source   string // host folder
	Target   string // path inside the container
	ReadOnly bool
}

// Status is what a container is doing, in the service's terms.
type Status string

const (
	// Created: made, not started yet.
	Created Status = "created"
	// Running: its processes run (an engine restarting it counts too).
	Running Status = "running"
	// Paused: its processes are frozen, memory kept.
	Paused Status = "paused"
	// Exited: its processes ended (stopped, killed, dead, being removed).
	Exited Status = "exited"
)

// State is what the engine says of one container.
type State struct {
	Status   Status
	ExitCode int
	// IP is the container's address as the container sees it; "" when it
	// has none.
	IP     string
	Labels map[string]string
}

// Container is one entry of a list.
type Container struct {
	Name   string
	Labels map[string]string
	Status Status
}

// EventKind is what happened to a container.
type EventKind string

const (
	EventStarted  EventKind = "started"
	EventDied     EventKind = "died"    // its processes ended
	EventRemoved  EventKind = "removed" // the container is gone
	EventOOM      EventKind = "oom"     // the kernel killed a process for want of memory
	EventPaused   EventKind = "paused"
	EventUnpaused EventKind = "unpaused"
)

// Event is one thing that happened to a container.
type Event struct {
	Kind     EventKind
	Name     string
	Labels   map[string]string
	ExitCode int // EventDied
}

// WindowSize is a terminal size in characters.
type WindowSize struct{ Rows, Cols uint }

// ExecSpec describes one command run in a container.
type ExecSpec struct {
	Cmd        []string
	Env        []string
	WorkingDir string
	Tty        bool
	// Size is the terminal's size at start (Tty only), so the first prompt
	// already has the right width.
	Size *WindowSize
	// Resize delivers window changes (Tty only).
	Resize <-chan WindowSize
	// Stdin, when set, is copied to the command; its EOF closes the
	// command's stdin.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // ignored with Tty: a terminal has one stream
}

// Stats is what the engine measures of one container.
type Stats struct {
	// CPUCores is how many CPU cores the container kept busy, on average,
	// over the sampling window (1.5 = one and a half cores).
	CPUCores float64
	// MemoryUsedBytes leaves out the page cache the kernel can drop at once
	// (inactive files).
	MemoryUsedBytes  int64
	MemoryLimitBytes int64
	// DiskUsedBytes is the container's root filesystem: its image plus what
	// was written to it. Bind mounts are not counted.
	DiskUsedBytes int64
	StartedAt     time.Time
}

// DiskLimits says whether the engine enforces a container's disk size.
type DiskLimits struct {
	Enforced bool
	// StorageDriver is the engine's way of storing container files
	// (Docker's overlay2, fuse-overlayfs, btrfs, …).
	StorageDriver string
	// Why, when not enforced: what the engine said, or that its storage
	// has no per-container size.
	Why string
}
