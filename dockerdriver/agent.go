package dockerdriver

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/rtemu-dev/rtemu/agent"
)

// The exec agent (package agent) runs commands inside a sandbox without a
// Docker exec each: one exec starts it, and it is reused. Every container
// Create makes gets the agent's volume at AgentMount, read-only; a
// container without it (made before, or by another build) runs commands by
// Docker exec, as does any command with a terminal.
const (
	// AgentMount is where the agent's files appear in a sandbox.
	AgentMount = "/.rtemu"
	// LabelAgent marks the agent's volumes; its value is the executable the
	// volume was made from, so a volume whose executable is gone is pruned.
	LabelAgent = "rtemu.agent"
	// labelAgentHelper marks the short-lived container that fills a volume.
	labelAgentHelper = "rtemu.agent.helper"

	// agentIdleFor is how long an unused agent is kept: it holds a few MB
	// of the sandbox's memory.
	agentIdleFor = time.Minute
	// agentsKept bounds the idle agents kept per container.
	agentsKept = 8
)

// errNoAgent: the container cannot run the agent (no volume, another
// protocol, a foreign architecture); it runs commands by Docker exec.
var errNoAgent = errors.New("no exec agent in this container")

// agentExe is the agent's file name in its directory of the volume.
const agentExe = "rtemu-agent"

// argv starts the agent kept in directory dir of the volume.
func (f *agentFiles) argv(dir string) []string {
	base := AgentMount + "/" + dir
	if f.interp == "" {
		return []string{base + "/" + agentExe}
	}
	return []string{base + "/lib/" + filepath.Base(f.interp), "--library-path", base + "/lib", base + "/" + agentExe}
}

// tarball streams the files into directory dir, then the file "current":
// the JSON command line that starts the agent from dir. Extracting replaces
// files in place, so two rtemus filling the volume at once each write a
// directory of their own; "current", written last, only ever names a whole
// one. Any rtemu can start the agent of a container from "current" alone.
func (f *agentFiles) tarball(dir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		add := func(name, src string) error {
			r, err := os.Open(src)
			if err != nil {
				return err
			}
			defer r.Close()
			fi, err := r.Stat()
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
			_, err = io.Copy(tw, r)
			return err
		}
		err := add(dir+"/"+agentExe, f.exe)
		for _, l := range f.libs {
			if err == nil {
				err = add(dir+"/lib/"+filepath.Base(l), l)
			}
		}
		launch, _ := json.Marshal(agentLaunch{Argv: f.argv(dir)})
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "current", Mode: 0o644, Size: int64(len(launch))})
		}
		if err == nil {
			_, err = tw.Write(launch)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// agents keeps the agent's volume and the started agents of one driver.
type agents struct {
	how agentSourcing
	ctx context.Context // ends with the driver: stops a build of the agent

	resolveMu  sync.Mutex
	resolvedOK bool        // files and info are final
	files      *agentFiles // nil: no agent for this engine
	info       AgentInfo

	mu      sync.Mutex
	argv    []string  // starts the agent from the volume; nil until it is filled
	retryAt time.Time // after a failure to fill the volume
	byName  map[string]*containerAgents
}

// containerAgents is what a driver knows of one container's agents.
type containerAgents struct {
	idle []*agentConn
	// own: made with the volume by this driver, so its agent starts with
	// argv without reading the volume's "current" (the engine takes tens
	// of ms to copy a file out of a container).
	own bool
	// without: it runs commands by Docker exec.
	without bool
	paused  bool
	// relay carries connections to the container's ports (ports.go);
	// relayReady is closed when one being started is up (or failed).
	relay      *portRelay
	relayReady chan struct{}
}

// ofLocked returns the container's entry, making it if need be.
func (a *agents) ofLocked(name string) *containerAgents {
	ca := a.byName[name]
	if ca == nil {
		ca = &containerAgents{}
		a.byName[name] = ca
	}
	return ca
}

func newAgents(ctx context.Context, d *Driver, how agentSourcing) *agents {
	a := &agents{how: how, ctx: ctx, byName: map[string]*containerAgents{}}
	// Find (or build) the agent now, so the first sandbox need not wait.
	go a.resolve(d)
	return a
}

// resolve finds the agent for the engine once; while the engine does not
// answer, it is asked again next time.
func (a *agents) resolve(d *Driver) (*agentFiles, AgentInfo) {
	a.resolveMu.Lock()
	defer a.resolveMu.Unlock()
	if a.resolvedOK {
		return a.files, a.info
	}
	f, info, final := d.resolveAgent(a.ctx, a.how)
	if final {
		a.files, a.info, a.resolvedOK = f, info, true
	}
	return f, info
}

// Agent says which exec agent this driver puts into sandboxes, finding it
// first if need be.
func (d *Driver) Agent(ctx context.Context) AgentInfo {
	if d.agents == nil {
		return AgentInfo{Error: "the exec agent is off (--exec-agent off)"}
	}
	done := make(chan AgentInfo, 1)
	go func() {
		_, info := d.agents.resolve(d)
		done <- info
	}()
	select {
	case info := <-done:
		return info
	case <-ctx.Done():
		return AgentInfo{Error: "still being found or built (" + ctx.Err().Error() + ")"}
	}
}

// agentMount returns the mount a new container gets, filling the volume the
// first time (with a helper container of the same image, which the volume
// outlives). It returns nil when the volume cannot be made: the container
// then does without.
func (d *Driver) agentMount(ctx context.Context, spec ContainerSpec) []mount.Mount {
	a := d.agents
	if a == nil {
		return nil
	}
	name := spec.Name
	files, _ := a.resolve(d)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgetLocked(name)
	if files == nil {
		a.ofLocked(name).without = true
		return nil
	}
	if a.argv == nil && time.Now().After(a.retryAt) {
		if argv, err := d.fillAgentVolume(ctx, spec.Image, spec.HelperLabels); err != nil {
			// A missing image fails this container's create too; the
			// next create, of another image, tries again at once.
			if !errors.Is(err, ErrNotFound) {
				a.retryAt = time.Now().Add(time.Minute)
			}
		} else {
			a.argv = argv
			d.pruneAgentVolumes(ctx)
		}
	}
	if a.argv == nil {
		a.ofLocked(name).without = true
		return nil
	}
	a.ofLocked(name).own = true
	return []mount.Mount{{Type: mount.TypeVolume, Source: files.volume, Target: AgentMount, ReadOnly: true,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true}}}
}

func (d *Driver) fillAgentVolume(ctx context.Context, image string, labels map[string]string) ([]string, error) {
	f := d.agents.files // resolved by the caller
	if _, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: f.volume, Labels: map[string]string{LabelAgent: f.exe}}); err != nil {
		return nil, wrap(err, "create volume "+f.volume)
	}
	helperLabels := map[string]string{labelAgentHelper: "1"}
	for k, v := range labels {
		helperLabels[k] = v
	}
	helper, err := d.cli.ContainerCreate(ctx,
		&container.Config{Image: image, Entrypoint: []string{AgentMount + "/none"}, Labels: helperLabels},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: f.volume, Target: AgentMount}}},
		nil, nil, "")
	if err != nil {
		return nil, wrap(err, "create agent helper")
	}
	defer func() {
		rm, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = d.cli.ContainerRemove(rm, helper.ID, container.RemoveOptions{Force: true})
	}()
	if argv, err := d.agentArgv(ctx, helper.ID); err == nil {
		return argv, nil
	}
	dir := newTag()[:12]
	tb := f.tarball(dir)
	defer tb.Close()
	if err := d.cli.CopyToContainer(ctx, helper.ID, AgentMount, tb, container.CopyToContainerOptions{}); err != nil {
		return nil, wrap(err, "fill "+f.volume)
	}
	return f.argv(dir), nil
}

// agentLaunch is the content of the volume's "current" file.
type agentLaunch struct {
	Argv []string `json:"argv"`
}

// agentArgv reads the command line that starts a container's agent from
// its volume; errNoAgent when it has none (or it is being rewritten).
func (d *Driver) agentArgv(ctx context.Context, name string) ([]string, error) {
	rc, _, err := d.cli.CopyFromContainer(ctx, name, AgentMount+"/current")
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s has no %s/current", errNoAgent, name, AgentMount)
		}
		return nil, wrap(err, "read the agent's command line in "+name)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var l agentLaunch
	if _, err := tr.Next(); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoAgent, err)
	}
	if err := json.NewDecoder(io.LimitReader(tr, 4096)).Decode(&l); err != nil || len(l.Argv) == 0 || !strings.HasPrefix(l.Argv[0], AgentMount+"/") {
		return nil, fmt.Errorf("%w: unreadable %s/current in %s", errNoAgent, AgentMount, name)
	}
	return l.Argv, nil
}

// pruneAgentVolumes removes agent volumes whose executable is gone (a test
// binary, a `go run` build) and that no container uses, and helpers a killed
// rtemu left.
func (d *Driver) pruneAgentVolumes(ctx context.Context) {
	vols, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelAgent))})
	if err == nil {
		for _, v := range vols.Volumes {
			if v.Name == d.agents.files.volume {
				continue
			}
			if _, err := os.Stat(v.Labels[LabelAgent]); err != nil {
				_ = d.cli.VolumeRemove(ctx, v.Name, false) // refused while in use
			}
		}
	}
	helpers, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelAgentHelper))})
	if err == nil {
		for _, h := range helpers {
			if time.Since(time.Unix(h.Created, 0)) > 5*time.Minute {
				_ = d.cli.ContainerRemove(ctx, h.ID, container.RemoveOptions{Force: true})
			}
		}
	}
}

// forgetLocked drops what is known of a container's agents.
func (a *agents) forgetLocked(name string) {
	if ca := a.byName[name]; ca != nil {
		for _, c := range ca.idle {
			c.idle.Stop()
			c.close()
		}
		if ca.relay != nil {
			ca.relay.close()
		}
		delete(a.byName, name)
	}
}

func (a *agents) forget(name string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgetLocked(name)
}

// closeAll ends every idle agent (each sees its stdin close and exits) and
// forgets every container.
func (a *agents) closeAll() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for name := range a.byName {
		a.forgetLocked(name)
	}
}

func (a *agents) setPaused(name string, paused bool) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ofLocked(name).paused = paused
}

// get hands out an idle agent of the container (fresh=false) or starts one.
func (d *Driver) getAgent(ctx context.Context, name string) (c *agentConn, fresh bool, err error) {
	a := d.agents
	a.mu.Lock()
	ca := a.ofLocked(name)
	if ca.without || ca.paused {
		a.mu.Unlock()
		return nil, false, errNoAgent
	}
	var argv []string
	if ca.own {
		argv = a.argv
	}
	for len(ca.idle) > 0 {
		c = ca.idle[len(ca.idle)-1]
		ca.idle = ca.idle[:len(ca.idle)-1]
		if c.idle.Stop() {
			a.mu.Unlock()
			return c, false, nil
		}
		// Its timer fired: it is being closed.
	}
	a.mu.Unlock()
	c, err = d.startAgent(ctx, name, argv)
	if errors.Is(err, errNoAgent) {
		a.mu.Lock()
		a.ofLocked(name).without = true
		// The volume may have been removed and made again empty (another
		// rtemu pruned it): look again at the next Create.
		a.argv = nil
		a.mu.Unlock()
	}
	return c, true, err
}

// putAgent keeps an agent for the container's next command.
func (d *Driver) putAgent(name string, c *agentConn) {
	a := d.agents
	a.mu.Lock()
	defer a.mu.Unlock()
	ca := a.ofLocked(name)
	if ca.without || ca.paused || len(ca.idle) >= agentsKept {
		c.close()
		return
	}
	c.idle = time.AfterFunc(agentIdleFor, func() {
		a.mu.Lock()
		if ca := a.byName[name]; ca != nil {
			ca.idle = slices.DeleteFunc(ca.idle, func(x *agentConn) bool { return x == c })
		}
		a.mu.Unlock()
		c.close()
	})
	ca.idle = append(ca.idle, c)
}

// agentConn is one agent: its exec's hijacked stream, frames both ways.
type agentConn struct {
	att  types.HijackedResponse
	r    *bufio.Reader
	w    *agent.FrameWriter
	idle *time.Timer // set while idle
	once sync.Once
}

func (c *agentConn) close() { c.once.Do(func() { c.att.Close() }) }

// startAgent starts the container's agent with argv, or, when argv is nil,
// with what the container's volume says.
func (d *Driver) startAgent(ctx context.Context, name string, argv []string) (*agentConn, error) {
	return d.startAgentAs(ctx, name, argv, agent.ServeCommands)
}

// startAgentAs starts the agent in one of its modes (agent.EnvServe).
func (d *Driver) startAgentAs(ctx context.Context, name string, argv []string, mode string) (*agentConn, error) {
	if argv == nil {
		var err error
		if argv, err = d.agentArgv(ctx, name); err != nil {
			return nil, err
		}
	}
	created, err := d.cli.ContainerExecCreate(ctx, name, container.ExecOptions{
		Cmd: argv, Env: []string{agent.EnvServe + "=" + mode},
		AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("exec in %s: %w", name, ErrNotRunning)
		}
		return nil, wrap(err, "start agent in "+name)
	}
	att, err := d.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, wrap(err, "attach agent in "+name)
	}
	pr, pw := io.Pipe()
	c := &agentConn{att: att, r: bufio.NewReader(pr), w: agent.NewFrameWriter(att.Conn)}
	go func() {
		// The agent's stderr carries only its own complaints; a command's
		// stderr comes in frames.
		_, err := stdcopy.StdCopy(pw, io.Discard, att.Reader)
		pw.CloseWithError(err)
	}()
	_ = att.Conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	typ, p, err := agent.ReadFrame(c.r)
	_ = att.Conn.SetReadDeadline(time.Time{})
	if err != nil || typ != agent.FrameReady || string(p) != agent.Version {
		c.close()
		return nil, fmt.Errorf("%w: %s: %v", errNoAgent, name, err)
	}
	return c, nil
}

// execViaAgent runs spec through an agent. handled is false when no agent
// could run it: the caller then runs it by Docker exec, which also gives
// Docker's own words for a command that cannot start.
func (d *Driver) execViaAgent(ctx context.Context, name string, spec ExecSpec) (code int, err error, handled bool) {
	if d.agents == nil || spec.Tty {
		return 0, nil, false
	}
	for {
		c, fresh, err := d.getAgent(ctx, name)
		if err != nil {
			return 0, nil, false
		}
		code, err, res := d.runOnAgent(ctx, name, c, spec)
		switch res {
		case agentRan:
			return code, err, true
		case agentRefused:
			d.putAgent(name, c)
			return 0, nil, false
		case agentBroken:
			c.close()
			if fresh {
				return 0, nil, false
			}
			// An idle agent may have ended with its container's restart:
			// try a fresh one.
		}
	}
}

type agentResult int

const (
	agentRan     agentResult = iota // the command ran; code and err are its
	agentRefused                    // the agent could not start it
	agentBroken                     // the agent's stream broke before the command started
)

func (d *Driver) runOnAgent(ctx context.Context, name string, c *agentConn, spec ExecSpec) (int, error, agentResult) {
	tag := newTag()
	start, _ := json.Marshal(agent.Start{
		Argv: spec.Cmd, Env: append(append([]string{}, spec.Env...), execMarker+"="+tag),
		Dir: spec.WorkingDir, Stdin: spec.Stdin != nil, Tag: tag,
	})
	if err := c.w.Write(agent.FrameStart, start); err != nil {
		return -1, nil, agentBroken
	}
	var (
		started = make(chan struct{})
		fin     = make(chan struct{})
		result  agentResult
		code    = -1
		readErr error
	)
	go func() {
		defer close(fin)
		typ, p, err := agent.ReadFrame(c.r)
		switch {
		case err != nil:
			result = agentBroken
			return
		case typ == agent.FrameFailed:
			result = agentRefused
			return
		case typ != agent.FrameStarted:
			result, readErr = agentRan, fmt.Errorf("exec agent in %s: unexpected frame %q", name, typ)
			return
		}
		result = agentRan
		close(started)
		stdout, stderr := orDiscard(spec.Stdout), orDiscard(spec.Stderr)
		for {
			typ, p, err = agent.ReadFrame(c.r)
			if err != nil {
				readErr = fmt.Errorf("exec agent in %s: %w", name, err)
				return
			}
			switch typ {
			case agent.FrameStdout:
				_, _ = stdout.Write(p)
			case agent.FrameStderr:
				_, _ = stderr.Write(p)
			case agent.FrameExit:
				code, readErr = agent.ExitCode(p)
				return
			}
		}
	}()

	// The command's stdin is copied only once it runs: a command the agent
	// refused is run by Docker exec, which must get all of it.
	var over bool // under c.w's lock: no more stdin frames
	notOver := func() bool { return !over }
	select {
	case <-started:
		if spec.Stdin != nil {
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := spec.Stdin.Read(buf)
					if n > 0 && c.w.WriteIf(notOver, agent.FrameStdin, buf[:n]) != nil {
						return
					}
					if err != nil {
						_ = c.w.WriteIf(notOver, agent.FrameStdinClose, nil)
						return
					}
				}
			}()
		}
	case <-fin:
	case <-ctx.Done():
	}

	select {
	case <-fin:
	case <-ctx.Done():
		// Kill it all: through the agent, or, when the agent does not
		// answer, by Docker exec, as a Docker exec is killed. The frame is
		// sent aside: the writer may be held by stdin the agent is not
		// reading (closing the stream below frees it).
		go func() { _ = c.w.Write(agent.FrameKill, nil) }()
		select {
		case <-fin:
		case <-time.After(2 * time.Second):
			d.killExec(name, tag)
		}
		c.close()
		<-fin
		return -1, ctx.Err(), agentRan
	}

	// Stdin that comes after the exit is dropped here, so the agent can run
	// the next command (it drops what was already on its way: the
	// command's stdin is closed once it has exited).
	c.w.Lock()
	over = true
	c.w.Unlock()
	if result != agentRan {
		return -1, nil, result
	}
	if readErr != nil {
		c.close()
		if st, err := d.Inspect(context.WithoutCancel(ctx), name); err == nil && !st.Running {
			return -1, fmt.Errorf("exec in %s: %w", name, ErrNotRunning), agentRan
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			// The agent was killed under the command (kill -9 $PPID, a
			// pkill): end what is left of the command too and report it
			// killed, as a Docker exec whose process is killed reports.
			d.killExec(name, tag)
			return 128 + 9, nil, agentRan
		}
		return -1, readErr, agentRan
	}
	d.putAgent(name, c)
	return code, nil, agentRan
}
