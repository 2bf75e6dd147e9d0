package docker

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/mount"

	"github.com/rtemu-dev/rtemu/agent"
)

// The link (agent.ServeLink): where the engine runs containers on this
// kernel and sees rtemu's data dir, a container made by this driver gets a
// folder of its own under the link dir, mounted read-only at LinkMount, and
// rtemu listens on a unix socket in it. One hub agent, started in the
// background by the container's own command (or, when that one is gone, by
// one Docker exec), opens connections to that socket as rtemu asks, and each serves
// commands (as an agent on a Docker exec's stream does) or relays one
// connection to a port. Neither a command nor a port connection then goes
// through the engine: an exec of `true` costs a unix-socket round trip and a
// fork, and a relayed port carries bytes as a socket pair does.
//
// Everything else falls back to the agents on Docker exec streams
// (agentpool.go) and the port relay on one (ports.go): an engine that
// refuses the mount (remote, or a VM that does not share the folder), a hub
// that cannot connect (Docker Desktop's file sharing carries no sockets),
// a container made by another rtemu, or a host other than Linux.
const (
	// LinkMount is where a sandbox sees its link folder.
	LinkMount = agent.LinkMount
	// labelLink names a container's link folder on the host, so Remove
	// finds it whichever rtemu made the container.
	labelLink = "rtemu.link"

	linkSocketName = agent.LinkSocket
	// linkHubScript, in the folder, starts the hub (withHubAtStart).
	linkHubScript = "hub"
	// linkSpare is how many connections the hub keeps open and unused.
	linkSpare = 4
	// linkWait bounds the wait for a linked connection; past it a command
	// goes the other way.
	linkWait = 2 * time.Second
	// linkPending bounds the connections per sandbox that have not said
	// the token yet.
	linkPending = 8
	// linkHelloTimeout bounds the wait for a new connection's token.
	linkHelloTimeout = 5 * time.Second
	// hubAtStartWait is how long after its container's start a command
	// waits for the hub that the container's command starts (a few ms on an
	// idle machine, more on a busy one); past it, a hub is started by
	// Docker exec.
	hubAtStartWait = 2 * time.Second
	// unusedHubFor is how long a hub nothing has used yet is kept (every
	// sandbox starts one, and it holds a few MB of the sandbox's memory): a
	// sandbox's first command comes within moments of its create, or after
	// it is long-lived, when one Docker exec more is nothing.
	unusedHubFor = 15 * time.Second
)

// errNoLink: the container has no working link.
var errNoLink = errors.New("no link to the container's agent")

// WithLinkDir keeps the containers' link folders in dir (see agentlink.go);
// without it, there are no links.
func WithLinkDir(dir string) Option { return func(o *options) { o.linkDir = dir } }

// agentLink is one container's link. Its fields are under agents.mu, but
// for idle, pending and the immutable ones.
type agentLink struct {
	d     *Driver
	name  string
	dir   string
	token string
	idle  chan net.Conn // connections past their token, unused

	startMu sync.Mutex // held while the hub starts

	// atStart: the container's command starts a hub (withHubAtStart);
	// attached is closed when one has connected (either kind).
	atStart   bool
	attached  chan struct{}
	startedAt time.Time // of the container, by this driver
	// byExec: a hub is being started by Docker exec; a hub at start that
	// comes meanwhile is turned away (two hubs would leave the loser's
	// first connection among the idle ones, to break under a command).
	byExec bool

	ln     net.Listener
	hub    *agentConn // nil while no hub runs
	failed bool       // the hub could not connect: not again
	closed bool
	out    int  // connections handed out and not yet back or closed
	used   bool // the hub has had a connection handed out
	last   time.Time
	timer  *time.Timer

	pending atomic.Int32
}

// newLinkFolder makes the folder of a container about to be created, or
// says "" when it gets none.
func (d *Driver) newLinkFolder(name string) string {
	a := d.agents
	if a == nil || d.linkDir == "" || d.linkOff.Load() || !LinksSupported {
		return ""
	}
	a.mu.Lock()
	own := a.ofLocked(name).own
	a.mu.Unlock()
	if !own {
		return ""
	}
	if err := os.MkdirAll(d.linkDir, 0o755); err != nil {
		return ""
	}
	dir := filepath.Join(d.linkDir, newTag()[:16])
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ""
	}
	// Whatever the umask: the container's user reads the folder.
	_ = os.Chmod(dir, 0o755)
	return dir
}

// linkMountOf is the container's mount of its folder.
func linkMountOf(dir string) mount.Mount {
	return mount.Mount{Type: mount.TypeBind, Source: dir, Target: LinkMount, ReadOnly: true}
}

// mountRefused says the engine cannot bind the folder (it does not see it).
func mountRefused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "bind source path does not exist") || strings.Contains(s, "invalid mount config")
}

// removeLinkFolder removes a container's folder, given by its label; only a
// folder directly under this driver's link dir.
func (d *Driver) removeLinkFolder(dir string) {
	if dir == "" || d.linkDir == "" || filepath.Dir(filepath.Clean(dir)) != filepath.Clean(d.linkDir) {
		return
	}
	_ = os.RemoveAll(dir)
}

// setLink records a created container's folder and listens on its socket.
// With hubArgv, the container's command starts a hub (withHubAtStart): the
// script that starts it and its token go into the folder.
func (a *agents) setLink(d *Driver, name, dir string, hubArgv []string) {
	l := &agentLink{d: d, name: name, dir: dir, token: newTag(), idle: make(chan net.Conn, 2*linkSpare),
		atStart: hubArgv != nil, attached: make(chan struct{})}
	if l.atStart {
		script := "export " + agent.EnvServe + "=" + agent.ServeLinkAtStart + "\nexec"
		for _, arg := range hubArgv {
			script += " '" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
		}
		if os.WriteFile(filepath.Join(dir, agent.LinkTokenFile), []byte(l.token), 0o644) != nil ||
			os.WriteFile(filepath.Join(dir, linkHubScript), []byte(script+"\n"), 0o644) != nil {
			l.atStart = false
		}
	}
	if ln, err := listenUnixIn(dir, linkSocketName); err == nil {
		l.ln = ln
		go l.accept(ln)
	} else {
		l.failed = true // commands go the other way
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.ofLocked(name).link; old != nil {
		old.closeLocked()
	}
	a.ofLocked(name).link = l
}

// withHubAtStart is a container's command (a /bin/sh -c script) that also
// starts the link's hub in the background, by the script in the link folder
// (so the command line of the container's process names no agent: a pkill
// of the agent in the sandbox leaves it alone). Should the hub fail or end,
// the command goes on as it was: the hub is no part of the sandbox.
func withHubAtStart(cmd []string) []string {
	if len(cmd) < 3 || cmd[0] != "/bin/sh" || cmd[1] != "-c" {
		return cmd
	}
	out := slices.Clone(cmd)
	out[2] = "/bin/sh " + LinkMount + "/" + linkHubScript + " >/dev/null 2>&1 &\n" + cmd[2]
	return out
}

// hubArgv is what starts the hub from the agent's volume, for a container
// getting the link folder dir; nil for none.
func (a *agents) hubArgv(dir string) []string {
	if a == nil || dir == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.argv
}

// linkStarted notes when a container was started, for the wait for its
// hub.
func (a *agents) linkStarted(name string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ca := a.byName[name]; ca != nil && ca.link != nil {
		ca.link.startedAt = time.Now()
	}
}

// linkFolderOf is the folder of a container this driver made, if any.
func (a *agents) linkFolderOf(name string) string {
	if a == nil {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ca := a.byName[name]; ca != nil && ca.link != nil {
		return ca.link.dir
	}
	return ""
}

// link returns the container's link with its hub running, starting it if
// need be; errNoLink when it has none.
func (d *Driver) link(ctx context.Context, name string) (*agentLink, error) {
	a := d.agents
	if a == nil {
		return nil, errNoLink
	}
	a.mu.Lock()
	ca := a.ofLocked(name)
	l := ca.link
	switch {
	case a.kept.Paused(name):
		a.mu.Unlock()
		return nil, ErrNotRunning
	case l == nil || l.failed || ca.without || a.argv == nil:
		a.mu.Unlock()
		return nil, errNoLink
	case l.hub != nil:
		a.mu.Unlock()
		return l, nil
	}
	argv := a.argv
	a.mu.Unlock()
	return l, l.start(ctx, argv)
}

// start waits for the hub at start, or starts a hub by Docker exec.
func (l *agentLink) start(ctx context.Context, argv []string) error {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	l.awaitHubAtStart(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	a := l.d.agents
	a.mu.Lock()
	hub, failed, closed := l.hub, l.failed, l.closed
	l.byExec = hub == nil && !failed && !closed
	a.mu.Unlock()
	switch {
	case hub != nil:
		return nil
	case failed || closed:
		return errNoLink
	}
	defer func() {
		a.mu.Lock()
		l.byExec = false
		a.mu.Unlock()
	}()
	sctx, cancel := context.WithTimeout(ctx, relayStartTimeout)
	defer cancel()
	c, err := l.d.startAgentAs(sctx, l.name, argv, agent.ServeLinkMode)
	if err != nil {
		if errors.Is(err, errNoAgent) {
			l.fail()
			return fmt.Errorf("%w: %v", errNoLink, err)
		}
		return err
	}
	req, _ := json.Marshal(agent.Link{Socket: LinkMount + "/" + linkSocketName, Token: l.token})
	if err := c.w.Write(agent.FrameLink, req); err != nil {
		c.close()
		return fmt.Errorf("%w: %v", errNoLink, err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(linkHelloTimeout + time.Second))
	typ, p, err := agent.ReadFrame(c.r)
	_ = c.conn.SetReadDeadline(time.Time{})
	if err != nil || typ != agent.FrameStarted {
		c.close()
		if err == nil {
			// The hub cannot reach the socket: the engine's side of the
			// folder is not this one (a VM's file sharing, a remote host
			// with the same path). No later container gets a folder.
			l.d.linkOff.Store(true)
			l.fail()
			return fmt.Errorf("%w: %s", errNoLink, p)
		}
		return fmt.Errorf("%w: %v", errNoLink, err)
	}
	// The hub opened one connection already, to check the socket.
	if !l.attach(c, linkSpare-1, false) {
		return errNoLink // the link was closed meanwhile
	}
	return nil
}

// attach makes c the link's hub unless it has one (or was closed, or c is
// the hub at start and one is being started by exec), and asks it for dials
// connections; false when c was not taken (and is closed).
func (l *agentLink) attach(c *agentConn, dials int, atStart bool) bool {
	a := l.d.agents
	a.mu.Lock()
	taken := !l.closed && l.hub == nil && !(atStart && l.byExec)
	if taken {
		l.hub, l.last, l.used = c, time.Now(), false
		if l.timer == nil {
			l.timer = time.AfterFunc(l.d.unusedHubFor, l.stopIfIdle)
		} else {
			l.timer.Reset(l.d.unusedHubFor)
		}
		select {
		case <-l.attached:
		default:
			close(l.attached)
		}
	}
	a.mu.Unlock()
	if !taken {
		c.close()
		return false
	}
	go l.watch(c)
	for range dials {
		_ = c.w.Write(agent.FrameDial, nil)
	}
	return true
}

// awaitHubAtStart waits for the hub that the container's command starts, if
// it is to come and has not come yet, until hubAtStartWait after the
// container's start.
func (l *agentLink) awaitHubAtStart(ctx context.Context) {
	a := l.d.agents
	a.mu.Lock()
	atStart, since := l.atStart, l.startedAt
	a.mu.Unlock()
	select {
	case <-l.attached:
		atStart = false // it came (and, if it is gone now, will not again)
	default:
	}
	if !atStart {
		return
	}
	if since.IsZero() {
		since = time.Now() // started by another driver
	}
	t := time.NewTimer(time.Until(since.Add(hubAtStartWait)))
	defer t.Stop()
	select {
	case <-l.attached:
	case <-t.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	l.atStart = false // one wait only
	a.mu.Unlock()
}

func (l *agentLink) fail() {
	a := l.d.agents
	a.mu.Lock()
	l.failed = true
	a.mu.Unlock()
}

// watch reads the hub's stdout until it ends (the hub exited: stopped when
// idle, killed, or its container stopped), then lets its connections go.
func (l *agentLink) watch(hub *agentConn) {
	for {
		if _, _, err := agent.ReadFrame(hub.r); err != nil {
			break
		}
		// A FrameFailed: one connection could not be opened; the command
		// that asked for it waits linkWait, then goes the other way.
	}
	hub.close()
	l.drain()
	a := l.d.agents
	a.mu.Lock()
	if l.hub == hub {
		l.hub = nil
	}
	a.mu.Unlock()
}

// drain closes the unused connections.
func (l *agentLink) drain() {
	for {
		select {
		case c := <-l.idle:
			c.Close()
		default:
			return
		}
	}
}

// accept takes connections that say the token, a few at a time.
func (l *agentLink) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if l.pending.Add(1) > linkPending {
			l.pending.Add(-1)
			c.Close()
			continue
		}
		go func() {
			defer l.pending.Add(-1)
			_ = c.SetReadDeadline(time.Now().Add(linkHelloTimeout))
			typ, p, err := agent.ReadFrame(c)
			_ = c.SetReadDeadline(time.Time{})
			if err != nil || (typ != agent.FrameHello && typ != agent.FrameHub) || subtle.ConstantTimeCompare(p, []byte(l.token)) != 1 {
				c.Close()
				return
			}
			if typ == agent.FrameHub {
				// The hub the container's command started: its token is
				// said, so out of the folder with it.
				_ = os.Remove(filepath.Join(l.dir, agent.LinkTokenFile))
				hub := &agentConn{conn: c, r: newFrameReader(c), w: agent.NewFrameWriter(c)}
				hub.closeFn = func() { c.Close() }
				l.attach(hub, linkSpare, true)
				return
			}
			l.offer(c)
		}()
	}
}

// offer keeps a connection for the next command or port, if there is room.
func (l *agentLink) offer(c net.Conn) {
	a := l.d.agents
	a.mu.Lock()
	defer a.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	select {
	case l.idle <- c:
	default:
		c.Close()
	}
}

// get hands out a connection, asking the hub for one more when fewer than
// linkSpare are left ready (connections that ran a command come back).
func (l *agentLink) get(ctx context.Context) (net.Conn, error) {
	a := l.d.agents
	a.mu.Lock()
	hub := l.hub
	a.mu.Unlock()
	if hub == nil {
		return nil, errNoLink
	}
	took := func(c net.Conn) net.Conn {
		a.mu.Lock()
		l.out++
		l.last, l.used = time.Now(), true
		a.mu.Unlock()
		return c
	}
	select {
	case c := <-l.idle:
		if len(l.idle) < linkSpare-1 {
			_ = hub.w.Write(agent.FrameDial, nil)
		}
		return took(c), nil
	default:
	}
	if err := hub.w.Write(agent.FrameDial, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoLink, err)
	}
	t := time.NewTimer(linkWait)
	defer t.Stop()
	select {
	case c := <-l.idle:
		return took(c), nil
	case <-t.C:
		return nil, fmt.Errorf("%w: no connection from the hub within %v", errNoLink, linkWait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release counts a handed-out connection back.
func (l *agentLink) release() {
	a := l.d.agents
	a.mu.Lock()
	l.out--
	l.last = time.Now()
	a.mu.Unlock()
}

// stopIfIdle ends a hub nothing has used for agentIdleFor, or one never
// used for unusedHubFor (it holds a few MB of the sandbox's memory); the
// next command starts another.
func (l *agentLink) stopIfIdle() {
	a := l.d.agents
	a.mu.Lock()
	hub := l.hub
	if hub == nil || l.closed {
		a.mu.Unlock()
		return
	}
	keepFor := agentIdleFor
	if !l.used {
		keepFor = l.d.unusedHubFor
	}
	if since := time.Since(l.last); l.out > 0 || since < keepFor {
		l.timer.Reset(keepFor - min(since, keepFor/2))
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	hub.close() // the hub sees its stdin end and exits; watch drains
}

// closeLocked ends the link for good (the container is forgotten).
func (l *agentLink) closeLocked() {
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.ln != nil {
		l.ln.Close()
	}
	if l.hub != nil {
		l.hub.close()
	}
	l.drain()
}

// linkedConnOf hands out one of the container's linked connections,
// starting its hub if need be.
func (d *Driver) linkedConnOf(ctx context.Context, name string) (*agentLink, net.Conn, error) {
	l, err := d.link(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	c, err := l.get(ctx)
	return l, c, err
}

// linkedAgent is a linked connection to run a command on.
func (d *Driver) linkedAgent(ctx context.Context, name string) (*agentConn, error) {
	l, c, err := d.linkedConnOf(ctx, name)
	if err != nil {
		return nil, err
	}
	return newLinkedAgent(l, c), nil
}

func newLinkedAgent(l *agentLink, c net.Conn) *agentConn {
	ac := &agentConn{conn: c, r: newFrameReader(c), w: agent.NewFrameWriter(c), link: l}
	ac.closeFn = func() {
		c.Close()
		l.release()
	}
	return ac
}

// putLinked keeps a linked connection whose command ended cleanly.
func (c *agentConn) putLinked() {
	c.once.Do(func() {
		c.link.release()
		if c.r.Buffered() > 0 {
			c.conn.Close() // the agent said more than it should have
			return
		}
		c.link.offer(c.conn)
	})
}

// dialLinked opens a connection to port through the link: errNoLink when
// there is none.
func (d *Driver) dialLinked(ctx context.Context, name string, port int) (net.Conn, error) {
	req, _ := json.Marshal(agent.PortRequest{Port: port})
	for range 3 {
		l, c, err := d.linkedConnOf(ctx, name)
		if err != nil {
			return nil, err
		}
		lc := &linkedConn{UnixConn: c.(*net.UnixConn), l: l}
		if err := agent.NewFrameWriter(c).Write(agent.FramePort, req); err != nil {
			lc.Close()
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
		typ, p, err := agent.ReadFrame(c)
		stop()
		_ = c.SetReadDeadline(time.Time{})
		switch {
		case ctx.Err() != nil:
			lc.Close()
			return nil, ctx.Err()
		case err != nil:
			// The hub ended under it (its container restarted, or it
			// was idle and stopped): go again.
			lc.Close()
			continue
		case typ == agent.FrameFailed:
			lc.Close()
			return nil, fmt.Errorf("dial %s:%d: %s: %w", name, port, p, syscall.ECONNREFUSED)
		case typ != agent.FrameStarted:
			lc.Close()
			return nil, fmt.Errorf("dial %s:%d: the agent answered frame %q", name, port, typ)
		}
		return lc, nil
	}
	return nil, fmt.Errorf("%w: the link's connections keep ending", errNoLink)
}

// linkedConn is a connection to a port through the link: the socket itself,
// raw bytes both ways once the agent has connected.
type linkedConn struct {
	*net.UnixConn
	l    *agentLink
	once sync.Once
}

func (c *linkedConn) Close() error {
	c.once.Do(c.l.release)
	return c.UnixConn.Close()
}
