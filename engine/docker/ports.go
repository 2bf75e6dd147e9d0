package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/agent"
)

// DialPort opens a TCP connection to a port inside the container. It is the
// one way rtemu reaches a sandbox's ports (SSH -L, dev URLs, the desktop),
// and it never uses the container's address, which the host cannot reach on
// Docker Desktop, a VM or remote engine, or from rtemu in a container: the
// connection is made from inside the sandbox's own network namespace, by
// the exec agent relaying it over the one Docker exec it runs in (agent.Relay),
// or, where the agent cannot run, by a shell relay (dialByShell). Made from
// inside, it reaches a server bound to 127.0.0.1 or ::1 as well as one bound
// to 0.0.0.0. Nothing listening is an error wrapping syscall.ECONNREFUSED.
func (d *Driver) DialPort(ctx context.Context, name string, port int) (net.Conn, error) {
	// The link first (agentlink.go): no engine stream in the way.
	if c, err := d.dialLinked(ctx, name, port); err == nil || errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
		return c, err
	}
	req, _ := json.Marshal(agent.PortRequest{Port: port})
	for range 3 {
		r, err := d.portRelay(ctx, name)
		if errors.Is(err, errNoAgent) || errors.Is(err, errOldRelay) {
			return d.dialByShell(ctx, name, port)
		}
		if err != nil {
			return nil, fmt.Errorf("dial %s:%d: %w", name, port, err)
		}
		s, err := r.Open(ctx, req)
		var refused *agent.RefusedError
		switch {
		case err == nil:
			return s, nil
		case errors.As(err, &refused):
			return nil, fmt.Errorf("dial %s:%d: %s: %w", name, port, refused.Msg, syscall.ECONNREFUSED)
		case errors.Is(err, agent.ErrRelayClosed):
			// The relay ended (its container restarted, or it was idle
			// and closed): start another.
			d.agents.relays.Drop(name, r)
			continue
		default:
			return nil, fmt.Errorf("dial %s:%d: %w", name, port, err)
		}
	}
	return nil, fmt.Errorf("dial %s:%d: the port relay in the sandbox keeps ending", name, port)
}

// relayStartTimeout bounds starting a relay, whoever asked for it first: a
// caller with a shorter deadline stops waiting, the start goes on for the
// next.
const relayStartTimeout = 20 * time.Second

// portRelay returns the container's port relay (agents.relays): one Docker
// exec of the agent in its ports mode, kept while it is used, that carries
// every connection to the container's ports; errNoAgent when the
// container cannot run the agent, errOldRelay when its agent is too old.
func (d *Driver) portRelay(ctx context.Context, name string) (*agent.Relay, error) {
	a := d.agents
	if a == nil {
		return nil, errNoAgent
	}
	if a.kept.Paused(name) {
		return nil, ErrNotRunning
	}
	a.mu.Lock()
	without := a.byName[name] != nil && a.byName[name].without
	a.mu.Unlock()
	if without {
		return nil, errNoAgent
	}
	return a.relays.Get(ctx, name)
}

// startRelay starts the container's agent in its ports mode and the relay
// on its stream (agentclient.RelayOptions.Open).
func (d *Driver) startRelay(ctx context.Context, name string) (*agent.Relay, error) {
	a := d.agents
	a.mu.Lock()
	var argv []string
	if a.ofLocked(name).own {
		argv = a.argv
	}
	a.mu.Unlock()
	c, err := d.startAgentAs(ctx, name, argv, agent.ServePortsMode)
	if errors.Is(err, errNoAgent) {
		a.mu.Lock()
		if ca := a.byName[name]; ca != nil { // not forgotten meanwhile
			ca.without = true
		}
		a.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	m, err := agent.NewRelay(c.r, c.conn, c.close)
	if err != nil {
		c.close()
		return nil, err
	}
	return m, nil
}

// relayScript connects to port $1 from inside the sandbox, on 127.0.0.1
// then ::1, prints RR once connected, and then copies its stdin to the
// connection and the connection to its stdout. The two Rs are written
// apart: the engine (Docker 20.10 here) was seen to hold a relayed
// process's first write back until its next one. The copies are tee, not
// cat: through busybox's cat, what was written after the relay started was
// lost in 5 of 6 connections here (the second R included); through tee in
// none of 12. It uses bash's /dev/tcp or an nc with -e (busybox's,
// traditional netcat); exit 111 means nothing listens, 112 that the image
// has neither.
const relayScript = `p=$1
exec 3<&0 4>&1
if command -v bash >/dev/null 2>&1; then
  for h in 127.0.0.1 ::1; do
    bash -c 'exec 5<>"/dev/tcp/$0/$1" || exit 111; printf R >&4; sleep 0.1; printf R >&4; tee <&5 >&4 & tee <&3 >&5; wait; exit 0' "$h" "$p" 2>/dev/null
    [ $? = 111 ] || exit 0
  done
  exit 111
fi
if command -v nc >/dev/null 2>&1; then
  for h in 127.0.0.1 ::1; do
    nc "$h" "$p" -e /bin/sh -c 'printf R >&4; sleep 0.1; printf R >&4; tee <&3 & tee >&4; wait; exit 0' 2>/dev/null && exit 0
  done
  exit 111
fi
exit 112`

// shellRelayTimeout bounds the wait for relayScript to connect.
const shellRelayTimeout = 10 * time.Second

// Exit codes of relayScript.
const (
	relayRefused = 111
	relayNoTool  = 112
)

// dialByShell relays a connection through a Docker exec of relayScript:
// the route where the exec agent cannot run (--exec-agent off, a container
// made without the agent's volume, an engine rtemu has no agent for). It
// costs a Docker exec per connection.
func (d *Driver) dialByShell(ctx context.Context, name string, port int) (net.Conn, error) {
	tag := newTag()
	// Until the relay says it is connected, its start must not meet a
	// pause (execgate.go).
	started := d.execStarting(name)
	defer started()
	created, err := d.cli.ExecCreate(ctx, name, client.ExecCreateOptions{
		Cmd:         []string{"/bin/sh", "-c", relayScript, "rtemu-relay", strconv.Itoa(port)},
		Env:         []string{execMarker + "=" + tag},
		AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("dial %s:%d: %w", name, port, ErrNotRunning)
		}
		return nil, wrap(err, fmt.Sprintf("dial %s:%d", name, port))
	}
	att, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, wrap(err, fmt.Sprintf("dial %s:%d", name, port))
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, io.Discard, att.Reader)
		pw.CloseWithError(err)
	}()
	c := &shellConn{d: d, name: name, tag: tag, att: att.HijackedResponse, r: pr}
	// The relay says RR once connected; a relay that says nothing in time is
	// given up, so a dial never hangs.
	wctx, cancel := context.WithTimeout(ctx, shellRelayTimeout)
	stop := context.AfterFunc(wctx, func() { att.Close() })
	var marker [2]byte
	_, err = io.ReadFull(pr, marker[:])
	stop()
	timedOut := wctx.Err() != nil && ctx.Err() == nil
	cancel()
	if err == nil && string(marker[:]) == "RR" {
		return c, nil
	}
	c.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if timedOut {
		return nil, fmt.Errorf("dial %s:%d: the shell relay in the sandbox did not connect within %v", name, port, shellRelayTimeout)
	}
	code := -1
	if ins, err := d.cli.ExecInspect(context.WithoutCancel(ctx), created.ID, client.ExecInspectOptions{}); err == nil && !ins.Running {
		code = ins.ExitCode
	}
	switch code {
	case relayRefused:
		return nil, fmt.Errorf("dial %s:%d: nothing listens on port %d in the sandbox (tried 127.0.0.1, ::1): %w", name, port, port, syscall.ECONNREFUSED)
	case relayNoTool:
		return nil, fmt.Errorf("dial %s:%d: %w", name, port, ErrNoRelay)
	}
	return nil, fmt.Errorf("dial %s:%d: the shell relay in the sandbox ended (exit code %d)", name, port, code)
}

// ErrNoRelay: a port cannot be reached because neither the exec agent nor
// a shell relay can run in the sandbox.
var ErrNoRelay = errors.New("the exec agent cannot run in this sandbox, and its image has neither bash nor an nc with -e to relay the connection: install bash, or let the agent run (see rtemu doctor)")

// shellConn is a connection relayed by relayScript: its stdin and stdout.
type shellConn struct {
	d    *Driver
	name string
	tag  string
	att  client.HijackedResponse
	r    io.Reader
	once sync.Once
}

func (c *shellConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *shellConn) Write(b []byte) (int, error) { return c.att.Conn.Write(b) }
func (c *shellConn) CloseWrite() error           { return c.att.CloseWrite() }

// Close ends the relay and whatever it started (an exec has no kill of its
// own).
func (c *shellConn) Close() error {
	c.once.Do(func() {
		c.att.Close()
		go c.d.killExec(c.name, c.tag)
	})
	return nil
}

func (c *shellConn) LocalAddr() net.Addr                { return relayAddr("rtemu") }
func (c *shellConn) RemoteAddr() net.Addr               { return relayAddr(c.name) }
func (c *shellConn) SetDeadline(t time.Time) error      { return c.att.Conn.SetDeadline(t) }
func (c *shellConn) SetReadDeadline(t time.Time) error  { return c.att.Conn.SetReadDeadline(t) }
func (c *shellConn) SetWriteDeadline(t time.Time) error { return c.att.Conn.SetWriteDeadline(t) }

type relayAddr string

func (a relayAddr) Network() string { return "rtemu-relay" }
func (a relayAddr) String() string  { return string(a) }
