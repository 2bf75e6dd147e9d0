package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
)

type agentResult int

const (
	agentRan     agentResult = iota // the command ran; code and err are its
	agentRefused                    // the agent could not start it
	agentBroken                     // the agent's stream broke before the command started
)

// agentRun is one command on one agent. Its lifetime, in run: send the
// start frame; read the agent's frames in the background (read); once the
// agent says the command started, feed it stdin (feed); wait for the exit
// frame or the caller's end (then kill it); stop stdin; say how it ended
// (settle). The agent goes back to the pool only after a clean end.
type agentRun struct {
	d    *Driver
	name string
	c    *agentConn
	spec ExecSpec
	tag  string // every process of the command carries it (execMarker)

	started chan struct{} // closed once the agent runs the command
	fin     chan struct{} // closed once read has ended; the fields below are then set
	result  agentResult
	code    int
	readErr error
	over    bool // under c.w's lock: no more stdin frames
}

func (d *Driver) runOnAgent(ctx context.Context, name string, c *agentConn, spec ExecSpec) (agentResult, int, error) {
	r := &agentRun{d: d, name: name, c: c, spec: spec, tag: newTag(), code: -1,
		started: make(chan struct{}), fin: make(chan struct{})}
	return r.run(ctx)
}

func (r *agentRun) run(ctx context.Context) (agentResult, int, error) {
	start, _ := json.Marshal(agent.Start{
		Argv: r.spec.Cmd, Env: append(append([]string{}, r.spec.Env...), execMarker+"="+r.tag),
		Dir: r.spec.WorkingDir, Stdin: r.spec.Stdin != nil, Tag: r.tag,
	})
	if err := r.c.w.Write(agent.FrameStart, start); err != nil {
		return agentBroken, -1, nil
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
		return agentRan, -1, ctx.Err()
	}
	// Stdin that comes after the exit is dropped here, so the agent can run
	// the next command (it drops what was already on its way: the
	// command's stdin is closed once it has exited).
	r.c.w.Lock()
	r.over = true
	r.c.w.Unlock()
	return r.settle(ctx)
}

// read takes the agent's frames: started (or failed), then the command's
// output, then its exit.
func (r *agentRun) read() {
	defer close(r.fin)
	typ, _, err := agent.ReadFrame(r.c.r)
	switch {
	case err != nil:
		r.result = agentBroken
		return
	case typ == agent.FrameFailed:
		r.result = agentRefused
		return
	case typ != agent.FrameStarted:
		r.result, r.readErr = agentRan, fmt.Errorf("exec agent in %s: unexpected frame %q", r.name, typ)
		return
	}
	r.result = agentRan
	close(r.started)
	stdout, stderr := orDiscard(r.spec.Stdout), orDiscard(r.spec.Stderr)
	for {
		typ, p, err := agent.ReadFrame(r.c.r)
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
		if n > 0 && r.c.w.WriteIf(notOver, agent.FrameStdin, buf[:n]) != nil {
			return
		}
		if err != nil {
			_ = r.c.w.WriteIf(notOver, agent.FrameStdinClose, nil)
			return
		}
	}
}

// kill ends the command the caller gave up on: through the agent, or, when
// the agent does not answer, by Docker exec, as a Docker exec is killed.
// The frame is sent aside: the writer may be held by stdin the agent is not
// reading (closing the stream frees it).
func (r *agentRun) kill() {
	go func() { _ = r.c.w.Write(agent.FrameKill, nil) }()
	select {
	case <-r.fin:
	case <-time.After(2 * time.Second):
		r.d.killExec(r.name, r.tag)
	}
	r.c.close()
	<-r.fin
}

// settle says how a run that read to its end ended, and keeps the agent
// for the next command when it is still sound.
func (r *agentRun) settle(ctx context.Context) (agentResult, int, error) {
	if r.result != agentRan {
		return r.result, -1, nil
	}
	if r.readErr != nil {
		r.c.close()
		if st, err := r.d.Inspect(context.WithoutCancel(ctx), r.name); err == nil && !st.Running {
			// Its container ended under it (stopped, killed, or the engine
			// stopping its containers): killed with it, as a Docker exec's
			// process is, and the caller finds out why.
			return agentRan, 128 + 9, nil
		}
		if errors.Is(r.readErr, io.EOF) || errors.Is(r.readErr, io.ErrUnexpectedEOF) || errors.Is(r.readErr, agent.ErrMuxClosed) {
			// The agent (or the relay carrying the command) was killed
			// under the command (kill -9 $PPID, a pkill): end what is left
			// of the command too and report it killed, as a Docker exec
			// whose process is killed reports.
			r.d.killExec(r.name, r.tag)
			return agentRan, 128 + 9, nil
		}
		return agentRan, -1, r.readErr
	}
	r.d.putAgent(r.name, r.c)
	return agentRan, r.code, nil
}
