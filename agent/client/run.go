// Package client is the engine-neutral client of rtemu's exec agent
// (package agent): it runs one command on a connection to an agent,
// whatever carried the connection (a Docker exec's stream, the link's unix
// socket, a stream of the port relay, a Kubernetes exec's stream). An engine
// says how the agent gets into a sandbox and how to open a stream to it
// (Conn), and how to kill a command and tell whether a container runs
// (Engine); this package speaks the agent's frames (Run), keeps the idle
// streams between commands (Pool), and tries kept streams then a fresh one
// for a command (Exec). The agent itself never imports it: the binary in
// every sandbox stays small.
package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
)

// Conn is a connection to an agent that said it is ready
// (agent.FrameReady), as the engine opened it.
type Conn interface {
	// Reader reads the agent's frames; Writer writes frames to it.
	Reader() *bufio.Reader
	Writer() *agent.FrameWriter
	// Close ends the connection: the agent sees its stdin end and kills
	// its command.
	Close()
}

// Engine is what a run needs of the engine besides the connection.
type Engine interface {
	// KillTagged kills, by the engine's own means, every process in the
	// container whose environment carries agent.ExecMarker=tag: the
	// command of an agent that does not answer any more.
	KillTagged(name, tag string)
	// Running says whether the container still runs.
	Running(ctx context.Context, name string) (bool, error)
}

// Command is one command to run: its argv, environment (added to the
// container's), working dir ("" the container's), stdin (copied until its
// EOF once the command runs) and where its output goes.
type Command struct {
	Argv   []string
	Env    []string
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Result says how a run ended.
type Result int

const (
	Ran     Result = iota // the command ran; code and err are its
	Refused               // the agent could not start it
	Broken                // the agent's stream broke before the command started
)

// agentRun is one command on one agent. Its lifetime, in run: send the
// start frame; read the agent's frames in the background (read); once the
// agent says the command started, feed it stdin (feed); wait for the exit
// frame or the caller's end (then kill it); stop stdin; say how it ended
// (settle). The agent goes back to the pool only after a clean end.
type agentRun struct {
	e    Engine
	name string
	c    Conn
	spec Command
	tag  string // every process of the command carries it (agent.ExecMarker)

	started chan struct{} // closed once the agent runs the command
	fin     chan struct{} // closed once read has ended; the fields below are then set
	result  Result
	code    int
	readErr error
	over    bool // under c.w's lock: no more stdin frames
	keep    bool // the run ended cleanly: c may serve the next command
}

// Run runs the command spec on the agent c in the container name. Ran: the command ran,
// and code and err are its; keep says c is sound for the next command (the
// caller keeps or closes it; on any other end Run closed it or left it to
// the caller as the result says). Refused: the agent could not start it
// (the caller runs it another way, with all its stdin). Broken: the stream
// broke before the command started.
func Run(ctx context.Context, e Engine, name string, c Conn, spec Command) (res Result, code int, err error, keep bool) {
	r := &agentRun{e: e, name: name, c: c, spec: spec, tag: newTag(), code: -1,
		started: make(chan struct{}), fin: make(chan struct{})}
	res, code, err = r.run(ctx)
	return res, code, err, r.keep
}

func newTag() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *agentRun) run(ctx context.Context) (Result, int, error) {
	start, _ := json.Marshal(agent.Start{
		Argv: r.spec.Argv, Env: append(append([]string{}, r.spec.Env...), agent.ExecMarker+"="+r.tag),
		Dir: r.spec.Dir, Stdin: r.spec.Stdin != nil, Tag: r.tag,
	})
	if err := r.c.Writer().Write(agent.FrameStart, start); err != nil {
		return Broken, -1, nil
	}
	go r.read()
	// The command's stdin is copied only once it runs: a command the agent
	// refused is run by Docker exec, which must get all of it.
	select {
	case <-r.started:
		if r.spec.Stdin != nil {
			go r.feed()
		}
	case <-r.fin:
	case <-ctx.Done():
	}
	select {
	case <-r.fin:
	case <-ctx.Done():
		r.kill()
		return Ran, -1, ctx.Err()
	}
	// Stdin that comes after the exit is dropped here, so the agent can run
	// the next command (it drops what was already on its way: the
	// command's stdin is closed once it has exited).
	r.c.Writer().Lock()
	r.over = true
	r.c.Writer().Unlock()
	return r.settle(ctx)
}

// read takes the agent's frames: started (or failed), then the command's
// output, then its exit.
func (r *agentRun) read() {
	defer close(r.fin)
	typ, _, err := agent.ReadFrame(r.c.Reader())
	switch {
	case err != nil:
		r.result = Broken
		return
	case typ == agent.FrameFailed:
		r.result = Refused
		return
	case typ != agent.FrameStarted:
		r.result, r.readErr = Ran, fmt.Errorf("exec agent in %s: unexpected frame %q", r.name, typ)
		return
	}
	r.result = Ran
	close(r.started)
	stdout, stderr := orDiscard(r.spec.Stdout), orDiscard(r.spec.Stderr)
	for {
		typ, p, err := agent.ReadFrame(r.c.Reader())
		if err != nil {
			r.readErr = fmt.Errorf("exec agent in %s: %w", r.name, err)
			return
		}
		switch typ {
		case agent.FrameStdout:
			_, _ = stdout.Write(p)
		case agent.FrameStderr:
			_, _ = stderr.Write(p)
		case agent.FrameExit:
			r.code, r.readErr = agent.ExitCode(p)
			return
		}
	}
}

// feed copies the caller's stdin to the command until its EOF (then closes
// the command's stdin) or until the run is over.
func (r *agentRun) feed() {
	notOver := func() bool { return !r.over }
	buf := make([]byte, 32<<10)
	for {
		n, err := r.spec.Stdin.Read(buf)
		if n > 0 && r.c.Writer().WriteIf(notOver, agent.FrameStdin, buf[:n]) != nil {
			return
		}
		if err != nil {
			_ = r.c.Writer().WriteIf(notOver, agent.FrameStdinClose, nil)
			return
		}
	}
}

// kill ends the command the caller gave up on: through the agent, or, when
// the agent does not answer, by the engine (KillTagged).
// The frame is sent aside: the writer may be held by stdin the agent is not
// reading (closing the stream frees it).
func (r *agentRun) kill() {
	go func() { _ = r.c.Writer().Write(agent.FrameKill, nil) }()
	select {
	case <-r.fin:
	case <-time.After(2 * time.Second):
		r.e.KillTagged(r.name, r.tag)
	}
	r.c.Close()
	<-r.fin
}

// settle says how a run that read to its end ended, and keeps the agent
// for the next command when it is still sound.
func (r *agentRun) settle(ctx context.Context) (Result, int, error) {
	if r.result != Ran {
		return r.result, -1, nil
	}
	if r.readErr != nil {
		r.c.Close()
		if running, err := r.e.Running(context.WithoutCancel(ctx), r.name); err == nil && !running {
			// Its container ended under it (stopped, killed, or the engine
			// stopping its containers): killed with it, as an exec's
			// process is, and the caller finds out why.
			return Ran, 128 + 9, nil
		}
		if errors.Is(r.readErr, io.EOF) || errors.Is(r.readErr, io.ErrUnexpectedEOF) || errors.Is(r.readErr, agent.ErrRelayClosed) {
			// The agent (or the relay carrying the command) was killed
			// under the command (kill -9 $PPID, a pkill): end what is left
			// of the command too and report it killed, as an exec whose
			// process is killed reports.
			r.e.KillTagged(r.name, r.tag)
			return Ran, 128 + 9, nil
		}
		return Ran, -1, r.readErr
	}
	r.keep = true
	return Ran, r.code, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
