package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/agent"
	agentclient "github.com/rtemu-dev/rtemu/agent/client"
)

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

	// kept holds the idle agents (and streams of the relay) between
	// commands, and the busy agents of their own, which forgetting the
	// container closes; it is paused with the container.
	kept *agentclient.Pool[*agentConn]
	// relays are the containers' port relays (ports.go).
	relays *agentclient.Relays
}

// containerAgents is what a driver knows of one container's agents, but
// for the kept ones (agents.kept).
type containerAgents struct {
	// own: made with the volume by this driver, so its agent starts with
	// argv without reading the volume's "current" (the engine takes tens
	// of ms to copy a file out of a container).
	own bool
	// without: it runs commands by Docker exec.
	without bool
	// link is the container's link (agentlink.go); nil without one.
	link *agentLink
	// noRelayedCommands: its relay refused a stream for commands (an agent
	// of an older build): each command starts an agent of its own.
	noRelayedCommands bool
	// agents counts its agents of their own (not streams of the relay)
	// that are started (or being started) and not closed, idle or busy
	// (apart from agents.mu: an agent may be closed under it).
	agents atomic.Int32
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
	a := &agents{how: how, ctx: ctx, byName: map[string]*containerAgents{},
		kept: agentclient.NewPool(agentclient.PoolOptions[*agentConn]{
			Keep: agentsKept, IdleFor: agentIdleFor,
			// An agent of its own is handed out before a stream of the
			// relay (which costs a few hops more per command), and kept
			// before one (which costs nothing to open again: the relay
			// stays, where the agent costs a Docker exec; a burst whose
			// streams came back first must not end the sandbox's own
			// agent).
			Rank: func(c *agentConn) int {
				if c.relayed {
					return 0
				}
				return 1
			},
		})}
	a.relays = agentclient.NewRelays(ctx, agentclient.RelayOptions{
		Open:    func(ctx context.Context, name string) (*agent.Relay, error) { return d.startRelay(ctx, name) },
		IdleFor: agentIdleFor, StartTimeout: relayStartTimeout,
		Lasting: func(err error) bool { return errors.Is(err, errNoAgent) || errors.Is(err, errOldRelay) },
	})
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

// forgetLocked drops what is known of a container's link.
func (a *agents) forgetLocked(name string) {
	if ca := a.byName[name]; ca != nil {
		if ca.link != nil {
			ca.link.closeLocked()
		}
		delete(a.byName, name)
	}
}

// forget drops what is known of a container's agents, closing them, the
// busy ones too (each sees its stdin end and kills its command).
func (a *agents) forget(name string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.forgetLocked(name)
	a.mu.Unlock()
	a.relays.Forget(name)
	a.kept.Forget(name)
}

// closeAll ends every agent (each sees its stdin close and exits) and
// forgets every container.
func (a *agents) closeAll() {
	if a == nil {
		return
	}
	a.mu.Lock()
	for name := range a.byName {
		a.forgetLocked(name)
	}
	a.mu.Unlock()
	a.relays.Close()
	a.kept.Close()
}

// setPaused marks the container paused (a frozen agent would not answer)
// or not. Its idle agents are kept for the thaw.
func (a *agents) setPaused(name string, paused bool) {
	if a == nil {
		return
	}
	a.kept.SetPaused(name, paused)
}

// get hands out a linked connection (agentlink.go) unless noLink, or an
// idle agent of the container (fresh=false), or starts one.
func (d *Driver) getAgent(ctx context.Context, name string, noLink bool) (c *agentConn, fresh bool, err error) {
	if !noLink {
		if c, err := d.linkedAgent(ctx, name); err == nil {
			return c, false, nil
		}
	}
	a := d.agents
	a.mu.Lock()
	ca := a.ofLocked(name)
	if ca.without {
		a.mu.Unlock()
		return nil, false, errNoAgent
	}
	// An idle agent of its own first, then an idle stream of the relay
	// (the pool's rank); none while the container is paused.
	c, ok, err := a.kept.Get(name)
	if err != nil {
		a.mu.Unlock()
		return nil, false, fmt.Errorf("%w: %v", errNoAgent, err)
	}
	if ok {
		a.mu.Unlock()
		return c, false, nil
	}
	var argv []string
	if ca.own {
		argv = a.argv
	}
	// The sandbox's first agent is one of its own (one Docker exec);
	// commands that come while it is busy go on streams of the relay (one
	// Docker exec more, whatever their number), not on an agent each.
	// (Counted without the lock: an agent may be closed under it.)
	relayed := ca.agents.Load() > 0 && !ca.noRelayedCommands
	if !relayed {
		ca.agents.Add(1) // this one, from now: the next goes on the relay
	}
	a.mu.Unlock()
	if relayed {
		if c, err := d.relayedAgent(ctx, name); err == nil {
			return c, true, nil
		}
		ca.agents.Add(1)
	}
	c, err = d.startAgent(ctx, name, argv)
	if err != nil {
		ca.agents.Add(-1)
	} else {
		// Tracked while it is open, idle or busy: forgetting the
		// container closes it.
		closeAgent := c.closeFn
		c.closeFn = func() {
			closeAgent()
			ca.agents.Add(-1)
			a.kept.Untrack(name, c)
		}
		a.kept.Track(name, c)
	}
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

// relayedAgent opens a stream for commands on the container's port relay
// (ports.go), starting the relay if need be: where there is no link, one
// Docker exec then carries every command of the sandbox, as the link's hub
// does, instead of one agent per command running at once.
func (d *Driver) relayedAgent(ctx context.Context, name string) (*agentConn, error) {
	r, err := d.portRelay(ctx, name)
	if err != nil {
		return nil, err
	}
	req, _ := json.Marshal(agent.PortRequest{Commands: true})
	s, err := r.Open(ctx, req)
	var refused *agent.RefusedError
	switch {
	case errors.As(err, &refused):
		a := d.agents
		a.mu.Lock()
		a.ofLocked(name).noRelayedCommands = true
		a.mu.Unlock()
		return nil, err
	case errors.Is(err, agent.ErrRelayClosed):
		d.agents.relays.Drop(name, r)
		return nil, err
	case err != nil:
		return nil, err
	}
	return &agentConn{conn: s, closeFn: func() { s.Close() }, r: newFrameReader(s), w: agent.NewFrameWriter(s), relayed: true}, nil
}

// putAgent keeps an agent for the container's next command: a linked
// connection goes back to its link, any other to the pool (which closes it
// when the container is paused or has enough kept).
func (d *Driver) putAgent(name string, c *agentConn) {
	if c.link != nil {
		c.putLinked()
		return
	}
	a := d.agents
	a.mu.Lock()
	without := a.byName[name] != nil && a.byName[name].without
	a.mu.Unlock()
	if without {
		c.close()
		return
	}
	a.kept.Put(name, c)
}

// agentConn is one agent: its exec's hijacked stream, or a linked
// connection to the hub (link set), frames both ways.
type agentConn struct {
	conn    net.Conn
	closeFn func()
	link    *agentLink
	relayed bool // a stream of the port relay (relayedAgent)
	r       *bufio.Reader
	w       *agent.FrameWriter
	once    sync.Once
}

func (c *agentConn) close() { c.once.Do(c.closeFn) }

// An agentConn is the client's connection (agentclient.Conn).
func (c *agentConn) Reader() *bufio.Reader      { return c.r }
func (c *agentConn) Writer() *agent.FrameWriter { return c.w }
func (c *agentConn) Close()                     { c.close() }

// agentHost is the driver as the agent's client needs it.
type agentHost struct{ d *Driver }

// KillTagged kills a command's processes by Docker exec.
func (h agentHost) KillTagged(name, tag string) { h.d.killExec(name, tag) }

// Running says whether the container runs.
func (h agentHost) Running(ctx context.Context, name string) (bool, error) {
	st, err := h.d.Inspect(ctx, name)
	return st.Running, err
}

func newFrameReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

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
	// Until the agent says it is up, its start must not meet a pause.
	started := d.execStarting(name)
	defer started()
	created, err := d.cli.ExecCreate(ctx, name, client.ExecCreateOptions{
		Cmd: argv, Env: []string{agent.EnvServe + "=" + mode},
		AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("exec in %s: %w", name, ErrNotRunning)
		}
		return nil, wrap(err, "start agent in "+name)
	}
	att, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, wrap(err, "attach agent in "+name)
	}
	pr, pw := io.Pipe()
	c := &agentConn{conn: att.Conn, closeFn: att.Close, r: newFrameReader(pr), w: agent.NewFrameWriter(att.Conn)}
	go func() {
		// The agent's stderr carries only its own complaints; a command's
		// stderr comes in frames.
		_, err := stdcopy.StdCopy(pw, io.Discard, att.Reader)
		pw.CloseWithError(err)
	}()
	_ = att.Conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	typ, p, err := agent.ReadFrame(c.r)
	_ = att.Conn.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// Slow (a busy machine), not missing: the next command tries again.
		c.close()
		return nil, fmt.Errorf("start agent in %s: no word from it in 15 s", name)
	}
	if err == nil && typ == agent.FrameReady && string(p) == agent.VersionOwnMux {
		// An agent of an older rtemu (the container's volume holds it):
		// its commands and link are this one's, its port relay is not.
		if mode != agent.ServePortsMode {
			return c, nil
		}
		c.close()
		return nil, fmt.Errorf("%w: %s", errOldRelay, name)
	}
	if err != nil || typ != agent.FrameReady || string(p) != agent.Version {
		c.close()
		return nil, fmt.Errorf("%w: %s: %v", errNoAgent, name, err)
	}
	return c, nil
}

// execViaAgent runs spec through an agent (agentclient.Exec). handled is
// false when no agent could run it: the caller then runs it by Docker
// exec, which also gives Docker's own words for a command that cannot
// start.
func (d *Driver) execViaAgent(ctx context.Context, name string, spec ExecSpec) (code int, err error, handled bool) {
	if d.agents == nil || spec.Tty {
		return 0, nil, false
	}
	return agentclient.Exec(ctx, &execStreams{agentHost: agentHost{d}}, name, agentclient.Command{
		Argv: spec.Cmd, Env: spec.Env, Dir: spec.WorkingDir, Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr})
}

// execStreams are the container's streams for one command: a linked
// connection, a kept agent, or a new one (getAgent). After three linked
// connections that broke, the link is passed over.
type execStreams struct {
	agentHost
	brokenLinks int
}

func (s *execStreams) Stream(ctx context.Context, name string) (agentclient.Conn, bool, error) {
	c, fresh, err := s.d.getAgent(ctx, name, s.brokenLinks >= 3)
	if err != nil {
		return nil, false, err
	}
	return c, fresh, nil
}

func (s *execStreams) Keep(name string, c agentclient.Conn) { s.d.putAgent(name, c.(*agentConn)) }

func (s *execStreams) Broke(_ string, c agentclient.Conn, _ bool) {
	if c.(*agentConn).link != nil {
		s.brokenLinks++
	}
}
