// Package docker runs sandboxes as Docker containers. It speaks the
// lifecycle service's words (Create, Start, Pause, Exec, DialPort, Remove,
// List) and handles the Docker traps once, here, so nobody above has to:
// exec exit codes read after draining, stdcopy demultiplexing, no exec-kill
// API, and paused containers that refuse exec, kill and stop.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/engine"
)

// The contract's errors (package engine): wrap maps the Docker client's
// failures onto them.
var (
	// ErrNotFound: the container or image does not exist.
	ErrNotFound = engine.ErrNotFound
	// ErrNotRunning: the container exists but is paused or stopped, so it
	// cannot run a command.
	ErrNotRunning = engine.ErrNotRunning
	// ErrNameInUse: a container of that name exists already.
	ErrNameInUse = engine.ErrNameInUse
	// ErrUnavailable: the Docker engine does not answer.
	ErrUnavailable = engine.ErrUnavailable
)

// Driver is a Docker Engine client in the lifecycle service's terms.
type Driver struct {
	cli    *client.Client
	host   string
	agents *agents // nil: every command by Docker exec
	stop   context.CancelFunc
	// network is the sandboxes' network (network.go).
	network sandboxNetwork
	// linkDir holds the containers' link folders (agentlink.go); linkOff
	// is set once the engine showed it cannot use them.
	linkDir string
	// unusedHubFor: how long a link's hub nobody has used is kept.
	unusedHubFor time.Duration
	linkOff      atomic.Bool
	// gates keep exec starts and pauses apart (execgate.go).
	gates execGates
}

// Option changes a Driver.
type Option func(*options)

type options struct {
	noAgent       bool
	agent         agentSourcing
	sharedNetwork bool // network.go
	linkDir       string
	unusedHubFor  time.Duration
}

// WithoutExecAgent runs every command by Docker exec, not through the exec
// agent (see agent.go), and relays ports by a shell in the sandbox.
func WithoutExecAgent() Option { return func(o *options) { o.noAgent = true } }

// New connects the way the Docker CLI does: DOCKER_HOST, then the current
// context (DOCKER_CONTEXT or ~/.docker/config.json), then the default socket.
// The API version is negotiated, so old engines (API 1.41) work.
func New(with ...Option) (*Driver, error) {
	opts := []client.Opt{client.FromEnv}
	host, err := contextHost()
	if err != nil {
		return nil, err
	}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	var o options
	for _, opt := range with {
		opt(&o)
	}
	// The client negotiates its API version at its first request and some
	// calls (ContainerList, NetworkList) read it without a lock: settle it
	// now, before anything (the agent's resolution below) uses the client
	// from another goroutine. An engine that does not answer leaves it to
	// the first request, as before.
	nctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, _ = cli.Ping(nctx, client.PingOptions{NegotiateAPIVersion: true})
	cancel()
	ctx, stop := context.WithCancel(context.Background())
	d := &Driver{cli: cli, host: cli.DaemonHost(), stop: stop, linkDir: o.linkDir, unusedHubFor: unusedHubFor}
	if o.unusedHubFor > 0 {
		d.unusedHubFor = o.unusedHubFor
	}
	d.network.shared = o.sharedNetwork
	if !o.noAgent {
		d.agents = newAgents(ctx, d, o.agent)
	}
	return d, nil
}

// Close releases the client's connections.
func (d *Driver) Close() error {
	d.stop()
	d.agents.closeAll()
	return d.cli.Close()
}

// Host is the engine address in use, e.g. unix:///var/run/docker.sock.
func (d *Driver) Host() string { return d.host }

// wrap turns Docker client errors into this package's sentinels, keeping the
// original text for logs.
func wrap(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %v", what, ErrNotFound, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%s: %w: %v", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// EngineInfo describes the engine rtemu talks to.
type EngineInfo = engine.Info

// Ping checks that the engine answers and says which one it is.
func (d *Driver) Ping(ctx context.Context) (EngineInfo, error) {
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		// Whatever stops the engine from answering (no socket, a timeout,
		// a proxy error) means the same to a caller: it is unavailable.
		return EngineInfo{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	v := res.Info
	return EngineInfo{Version: v.ServerVersion, APIVersion: d.cli.ClientVersion(), OS: v.OSType + "/" + v.Architecture, Host: d.host, CPUs: v.NCPU}, nil
}

// ImagePresent reports whether the image is in the engine's local store.
func (d *Driver) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := d.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap(err, "inspect image "+ref)
	}
	return true, nil
}

// Pull fetches an image, calling progress with each status line the engine
// reports (already de-duplicated per layer, so a log stays readable).
func (d *Driver) Pull(ctx context.Context, ref string, progress func(string)) error {
	rc, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return wrap(err, "pull "+ref)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	last := map[string]string{}
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("pull %s: reading progress: %w", ref, err)
		}
		if m.Error != nil {
			return fmt.Errorf("pull %s: %s", ref, m.Error.Message)
		}
		if progress != nil && last[m.ID] != m.Status {
			last[m.ID] = m.Status
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + m.Status
			}
			progress(line)
		}
	}
}

// ContainerSpec is what a sandbox container is made from; Mount binds a
// host folder into one. The engine must see the folder at the same path as
// rtemu: a local engine, or Docker Desktop's shared folders.
type (
	ContainerSpec = engine.ContainerSpec
	Mount         = engine.Mount
)

// keepAlive keeps a container running whatever the image's own command is.
// docker-init (Init: true) is PID 1, so orphans of exec'd commands are reaped
// (moby/moby#34683).
var keepAlive = []string{"/bin/sh", "-c", "while :; do sleep 86400; done"}

// Create makes (but does not start) a container.
func (d *Driver) Create(ctx context.Context, spec ContainerSpec) error {
	init := true
	pids := spec.PidsLimit
	cmd, err := d.keepAliveFor(ctx, spec.Image)
	if err != nil {
		return err
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Hostname:   spec.Hostname,
		Env:        spec.Env,
		Labels:     spec.Labels,
		WorkingDir: spec.WorkingDir,
		Entrypoint: cmd[:1],
		Cmd:        cmd[1:],
	}
	netName, err := d.SandboxNetwork(ctx)
	if err != nil {
		return err
	}
	host := &container.HostConfig{
		Init: &init,
		// Never privileged, never the Docker socket: a sandbox must not reach
		// the host or its siblings. On rtemu's own network, without raw
		// sockets, device nodes or a writable cgroup file system (network.go).
		Privileged:    false,
		NetworkMode:   container.NetworkMode(netName),
		CapDrop:       droppedCaps,
		ReadonlyPaths: sandboxReadonlyPaths,
		Resources: container.Resources{
			NanoCPUs:  spec.NanoCPUs,
			Memory:    spec.MemoryBytes,
			PidsLimit: &pids,
		},
		// The disk size, where the engine enforces one (DiskLimits); nil
		// otherwise.
		StorageOpt: storageOpt(spec.DiskBytes),
	}
	for _, m := range spec.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	host.Mounts = append(host.Mounts, d.agentMount(ctx, spec)...)
	endpoints := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netName: {Aliases: spec.Aliases},
	}}
	linkDir := d.newLinkFolder(spec.Name)
	hubArgv := d.agents.hubArgv(linkDir)
	if linkDir != "" {
		cfg.Labels = maps.Clone(cfg.Labels)
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[labelLink] = linkDir
		host.Mounts = append(host.Mounts, linkMountOf(linkDir))
		if hubArgv != nil {
			// No Docker exec even for the first command (agentlink.go).
			withHub := withHubAtStart(cmd)
			cfg.Entrypoint, cfg.Cmd = withHub[:1], withHub[1:]
		}
	}
	_, err = d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: cfg, HostConfig: host, NetworkingConfig: endpoints, Name: spec.Name,
	})
	if err != nil && linkDir != "" && mountRefused(err) {
		// The engine does not see rtemu's folders: no links from now on.
		d.linkOff.Store(true)
		d.removeLinkFolder(linkDir)
		linkDir = ""
		delete(cfg.Labels, labelLink)
		host.Mounts = host.Mounts[:len(host.Mounts)-1]
		cfg.Entrypoint, cfg.Cmd = cmd[:1], cmd[1:]
		_, err = d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: cfg, HostConfig: host, NetworkingConfig: endpoints, Name: spec.Name,
		})
	}
	if linkDir != "" {
		if err == nil {
			d.agents.setLink(d, spec.Name, linkDir, hubArgv)
		} else {
			d.removeLinkFolder(linkDir)
		}
	}
	if cerrdefs.IsConflict(err) {
		return fmt.Errorf("create container %s: %w: %v", spec.Name, ErrNameInUse, err)
	}
	if err != nil && (strings.Contains(err.Error(), "catatonit") || strings.Contains(err.Error(), "init binary")) {
		// Podman runs Init: true with its own init binary, packaged apart.
		return fmt.Errorf("create container %s: the engine has no init binary for the sandbox's PID 1 "+
			"(Podman: install catatonit, or set init_path in containers.conf): %w", spec.Name, err)
	}
	return wrap(err, "create container "+spec.Name)
}

// Start starts a created container.
func (d *Driver) Start(ctx context.Context, name string) error {
	if _, err := d.cli.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
		return wrap(err, "start "+name)
	}
	d.agents.linkStarted(name)
	return nil
}

// Pause freezes every process of the container (cgroup freezer): memory and
// state are kept for as long as the engine keeps the container.
func (d *Driver) Pause(ctx context.Context, name string) error {
	// Not while an exec of ours is starting in it (execgate.go).
	g := d.gates.get(name)
	g.Lock()
	defer g.Unlock()
	d.agents.setPaused(name, true) // a frozen agent would not answer
	_, err := d.cli.ContainerPause(ctx, name, client.ContainerPauseOptions{})
retry:
	for try := 1; try < pauseTries && freezeFailed(err); try++ {
		select {
		case <-ctx.Done():
			break retry
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
		_, err = d.cli.ContainerPause(ctx, name, client.ContainerPauseOptions{})
	}
	if freezeFailed(err) {
		d.agents.setPaused(name, false) // runc thawed what it could not freeze
	}
	return wrap(err, "pause "+name)
}

func freezeFailed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to freeze")
}

// pauseTries bounds the tries of a pause whose freeze did not complete.
// runc (1.1, cgroup v1) gives up when the freezer has not reached FROZEN
// after a thousand polls, about a second, and thaws the container again;
// on a loaded machine that happens ("OCI runtime pause failed: unable to
// freeze", 2 pauses in a run of this package's tests five times beside
// another suite), and the next try freezes it.
const pauseTries = 5

// Unpause thaws a paused container.
func (d *Driver) Unpause(ctx context.Context, name string) error {
	if _, err := d.cli.ContainerUnpause(ctx, name, client.ContainerUnpauseOptions{}); err != nil {
		return wrap(err, "unpause "+name)
	}
	// The engine (Docker 20.10 here) applies containerd's "paused" event
	// when it comes, and under load it was seen to come after the unpause:
	// the engine then says paused of a container whose processes run, and
	// refuses execs. Thaw again until it says running.
	for range 3 {
		if st, err := d.Inspect(ctx, name); err != nil || !st.Paused {
			break
		}
		_, _ = d.cli.ContainerUnpause(ctx, name, client.ContainerUnpauseOptions{})
	}
	d.agents.setPaused(name, false)
	return nil
}

// Remove force-removes a container. Removing one that is already gone is not
// an error.
func (d *Driver) Remove(ctx context.Context, name string) error {
	linkDir := d.agents.linkFolderOf(name)
	d.agents.forget(name)
	defer d.gates.forget(name)
	// A frozen container cannot be killed (moby/moby#15853): thaw it first.
	st, err := d.Inspect(ctx, name)
	if err == nil && st.Paused {
		if err := d.Unpause(ctx, name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	_, err = d.cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		// Named by the label whichever rtemu made the container, or known
		// to this driver when the container was removed behind its back.
		if l := st.Labels[labelLink]; l != "" {
			linkDir = l
		}
		d.removeLinkFolder(linkDir)
	}
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	// A removal already under way (say, two deletes racing) ends the same.
	if err != nil && strings.Contains(err.Error(), "already in progress") {
		return nil
	}
	return wrap(err, "remove "+name)
}

// State is what the engine says of one container.
type State struct {
	Running   bool
	Paused    bool
	Status    string // created, running, paused, exited, dead, ...
	ExitCode  int
	StartedAt time.Time
	IP        string
	Labels    map[string]string
	// Limits as applied by the engine.
	NanoCPUs    int64
	MemoryBytes int64
	PidsLimit   int64
	Env         []string
	WorkingDir  string
	Privileged  bool
	Init        bool
}

// Inspect returns the container's state; ErrNotFound when it does not exist.
func (d *Driver) Inspect(ctx context.Context, name string) (State, error) {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return State{}, wrap(err, "inspect "+name)
	}
	c := res.Container
	st := State{Labels: c.Config.Labels, Env: c.Config.Env, WorkingDir: c.Config.WorkingDir}
	if c.State != nil {
		st.Running, st.Paused, st.Status, st.ExitCode = c.State.Running, c.State.Paused, string(c.State.Status), c.State.ExitCode
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
	}
	if c.HostConfig != nil {
		st.NanoCPUs, st.MemoryBytes, st.Privileged = c.HostConfig.NanoCPUs, c.HostConfig.Memory, c.HostConfig.Privileged
		if c.HostConfig.PidsLimit != nil {
			st.PidsLimit = *c.HostConfig.PidsLimit
		}
		st.Init = c.HostConfig.Init != nil && *c.HostConfig.Init
	}
	if c.NetworkSettings != nil {
		// The address on the container's own network (NetworkSettings'
		// top-level IPAddress is only the default bridge's, and deprecated),
		// else on any it is on.
		if c.HostConfig != nil {
			if n := c.NetworkSettings.Networks[string(c.HostConfig.NetworkMode)]; n != nil && n.IPAddress.IsValid() {
				st.IP = n.IPAddress.String()
			}
		}
		for _, n := range c.NetworkSettings.Networks {
			if st.IP == "" && n != nil && n.IPAddress.IsValid() {
				st.IP = n.IPAddress.String()
			}
		}
	}
	return st, nil
}

// Container is one entry of List.
type Container struct {
	ID     string
	Name   string
	Labels map[string]string
	State  string // created, running, paused, exited, dead, ...
}

// List returns every container (running or not) carrying all the labels.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]Container, error) {
	f := make(client.Filters)
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, wrap(err, "list containers")
	}
	cs := res.Items
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, Container{ID: c.ID, Name: name, Labels: c.Labels, State: string(c.State)})
	}
	return out, nil
}

// Event is a container event from the engine.
type Event struct {
	Action   string // die, destroy, oom, pause, unpause, start, ...
	Name     string
	Labels   map[string]string
	ExitCode int
}

// Watch streams container events for containers carrying all the labels
// until ctx ends or the connection breaks; the error channel says which.
func (d *Driver) Watch(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	f := make(client.Filters).Add("type", string(events.ContainerEventType))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	evs := d.cli.Events(ctx, client.EventsListOptions{Filters: f})
	msgs, errs := evs.Messages, evs.Err
	out := make(chan Event)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				ev := Event{Action: string(m.Action), Name: m.Actor.Attributes["name"], Labels: m.Actor.Attributes}
				ev.ExitCode, _ = strconv.Atoi(m.Actor.Attributes["exitCode"])
				select {
				case out <- ev:
				case <-ctx.Done():
					outErr <- ctx.Err()
					return
				}
			case err := <-errs:
				outErr <- wrap(err, "docker events")
				return
			}
		}
	}()
	return out, outErr
}

// UpdateLimits changes the CPU and memory limits of a container, running or
// not. The swap limit is set the way create sets it by default (twice the
// memory), so an updated container cannot be told from one created with
// these limits; growing past the old swap limit would fail otherwise.
func (d *Driver) UpdateLimits(ctx context.Context, name string, nanoCPUs, memoryBytes int64) error {
	res := container.Resources{NanoCPUs: nanoCPUs, Memory: memoryBytes}
	if memoryBytes > 0 {
		res.MemorySwap = 2 * memoryBytes
	}
	_, err := d.cli.ContainerUpdate(ctx, name, client.ContainerUpdateOptions{Resources: &res})
	return wrap(err, "update limits of "+name)
}
