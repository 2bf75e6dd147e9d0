package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/agent"
	"github.com/rtemu-dev/rtemu/engine"
)

// WindowSize is a terminal size in characters; ExecSpec describes one
// command run in a container.
type (
	WindowSize = engine.WindowSize
	ExecSpec   = engine.ExecSpec
)

// execMarker is the environment variable that tags every process an exec
// starts. Docker has no API to kill an exec (moby/moby#35703), and the
// container's PID 1 must not be killed, so a cancelled exec is ended by a
// second exec that kills every process whose environment carries the tag:
// the command, its children, and whatever they left in the background.
const execMarker = agent.ExecMarker

// killByMarker kills a cancelled exec's processes by their tag.
const killByMarker = agent.KillByMarker

// Exec runs a command in a running container and returns its exit code.
//
// When ctx ends first, every process the command started is killed and the
// error is ctx.Err(); the output written so far stays written. A paused or
// stopped container gives ErrNotRunning.
//
// A command without a terminal runs through the container's exec agent when
// it has one (agent.go); the rest, and whatever the agent cannot start, by
// Docker exec.
func (d *Driver) Exec(ctx context.Context, name string, spec ExecSpec) (int, error) {
	if code, err, ok := d.execViaAgent(ctx, name, spec); ok {
		return code, err
	}
	tag := newTag()
	opts := client.ExecCreateOptions{
		Cmd:          spec.Cmd,
		Env:          append(append([]string{}, spec.Env...), execMarker+"="+tag),
		WorkingDir:   spec.WorkingDir,
		TTY:          spec.Tty,
		AttachStdin:  spec.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	}
	if spec.Tty && spec.Size != nil {
		opts.ConsoleSize = client.ConsoleSize{Height: spec.Size.Rows, Width: spec.Size.Cols}
	}
	// Until its process runs, the exec's start must not meet a pause.
	started := d.execStarting(name)
	defer started()
	created, err := d.cli.ExecCreate(ctx, name, opts)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			// "Container … is paused, unpause the container before exec"
			// or "… is not running" (moby/moby#9672).
			return -1, fmt.Errorf("exec in %s: %w", name, ErrNotRunning)
		}
		return -1, wrap(err, "exec in "+name)
	}
	att, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: spec.Tty, ConsoleSize: opts.ConsoleSize})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return -1, fmt.Errorf("exec in %s: %w", name, ErrNotRunning)
		}
		return -1, wrap(err, "exec attach in "+name)
	}
	defer att.Close()

	if spec.Stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, spec.Stdin)
			// EOF on the client's stdin becomes EOF on the command's.
			_ = att.CloseWrite()
		}()
	}
	if spec.Tty {
		go d.followResize(ctx, created.ID, spec.Resize)
	}

	// flowing counts the output bytes, so the end of a stream can be told
	// from a pause in it (see below).
	var flowing atomic.Int64
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		stdout := countingWriter{orDiscard(spec.Stdout), &flowing}
		stderr := countingWriter{orDiscard(spec.Stderr), &flowing}
		if spec.Tty {
			_, _ = io.Copy(stdout, att.Reader)
		} else {
			// Without a TTY the stream is multiplexed; demultiplex it.
			_, _ = stdcopy.StdCopy(stdout, stderr, att.Reader)
		}
	}()

	// A command that leaves a background process holding its stdout keeps
	// the stream open after it exits (the engine gives up only after a few
	// seconds). Watch the exec; once it has exited, let the output drain
	// until it has been quiet for a moment (never cutting a stream that is
	// still flowing, up to a bound), then close it.
	//
	// The engine takes a stream closed by its client for a failed attach
	// and overwrites the exec's exit code with 126, so once the exit has
	// been seen, its code is the one read then.
	exited := make(chan int, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go d.watchExit(watchCtx, created.ID, started, exited)

	code, seen := 0, false
	select {
	case <-drained:
	case code = <-exited:
		seen = true
		d.closeWhenQuiet(ctx, att.Close, drained, &flowing)
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		d.killExec(name, tag)
		att.Close()
		<-drained
		return -1, ctx.Err()
	}
	stopWatch()
	if seen {
		return code, nil
	}
	return d.exitCode(ctx, created.ID)
}

// exitCode reads the exit code once the output is drained. The engine marks
// an exec stopped asynchronously after its stream closes, and an exec that
// has not started inspects as "not running, exit 0", so poll until Running is
// false (testcontainers-go's DockerContainer.Exec does the same).
func (d *Driver) exitCode(ctx context.Context, execID string) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; ; wait = min(wait*2, 50*time.Millisecond) {
		ins, err := d.cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil {
			return -1, wrap(err, "exec inspect")
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return -1, errors.New("exec inspect: command still running after its output ended")
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// closeWhenQuiet waits for the stream to end; once no output has come for a
// moment (or after a bound in all) it closes the stream itself. The agent
// drains a command's pipes the same way.
func (d *Driver) closeWhenQuiet(ctx context.Context, closeStream func(), drained <-chan struct{}, flowing *atomic.Int64) {
	agent.WaitQuiet(ctx, drained, flowing)
	select {
	case <-drained:
		return
	default:
	}
	if ctx.Err() != nil {
		return
	}
	closeStream()
	<-drained
}

// watchExit polls the exec: running is called once the engine gives it a
// process id (its `runc init` is done; execgate.go), and exited gets its
// exit code once it has ended. Polls come quickly at first, so a pause waiting for the
// start is not held up, then every 250 ms.
func (d *Driver) watchExit(ctx context.Context, execID string, running func(), exited chan<- int) {
	giveUpStart := time.Now().Add(startedPollLimit)
	for wait := time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		ins, err := d.cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil || ins.PID != 0 || ins.ExitCode != 0 || time.Now().After(giveUpStart) {
			running()
		}
		if err == nil && !ins.Running && ins.PID != 0 {
			exited <- ins.ExitCode
			return
		}
	}
}

// killExec ends every process tagged by one exec. It runs on its own
// deadline: the caller's context has usually just ended.
func (d *Driver) killExec(name, tag string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer d.execStarting(name)() // short: held to its end
	created, err := d.cli.ExecCreate(ctx, name, client.ExecCreateOptions{
		Cmd: []string{"/bin/sh", "-c", killByMarker, tag},
	})
	if err != nil {
		return
	}
	att, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, att.Reader)
	att.Close()
	_, _ = d.exitCode(ctx, created.ID)
}

func (d *Driver) followResize(ctx context.Context, execID string, sizes <-chan WindowSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-sizes:
			if !ok {
				return
			}
			// A resize can race the exec's start; retry briefly.
			for i := 0; i < 5; i++ {
				_, err := d.cli.ExecResize(ctx, execID, client.ExecResizeOptions{Height: s.Rows, Width: s.Cols})
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

func newTag() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.w.Write(p)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
