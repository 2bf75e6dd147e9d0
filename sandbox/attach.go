package sandbox

import (
	"context"
	"errors"
	"io"

	"github.com/rtemu-dev/rtemu/engine"
)

// WindowSize is a terminal's size in characters.
type WindowSize = engine.WindowSize

// AttachSpec is one process run with the caller's own streams: an SSH shell
// or command, or a file operation of the SFTP server.
type AttachSpec struct {
	Cmd []string
	Env []string // added to the sandbox's environment
	Tty bool
	// Size is the terminal's size at start and Resize its changes (Tty only).
	Size   *WindowSize
	Resize <-chan WindowSize
	// Stdin, when set, feeds the process; its EOF closes the process's stdin.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // unused with Tty: a terminal has one stream
}

// Attach runs a process in a running sandbox, streaming its input and output
// through spec, and returns its exit code (128+N when a signal N ended it).
// When ctx ends first (an SSH client hung up) the process and everything it
// started are killed and the error is ctx.Err(). The sandbox counts as
// active while the process runs.
func (s *Service) Attach(ctx context.Context, ref string, spec AttachSpec) (int, error) {
	// As an SSH session does: wait for a starting sandbox, wake a paused one.
	sb, err := s.usable(ctx, ref, use{by: "ssh", wakeAny: true})
	if err != nil {
		return -1, err
	}
	defer s.BeginActivity(ctx, sb.ID)()
	code, err := s.engine.Exec(ctx, sb.ContainerName(), engine.ExecSpec{
		Cmd: spec.Cmd, Env: withSandboxEnv(sb.Env, spec.Env), Tty: spec.Tty, Size: spec.Size, Resize: spec.Resize,
		Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr,
	})
	switch {
	case err == nil:
		return code, nil
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case errors.Is(err, engine.ErrNotRunning):
		if cur, gerr := s.store.GetSandbox(ctx, sb.ID); gerr == nil {
			sb = cur
		}
		if rerr := runnable(sb); rerr != nil {
			return -1, rerr
		}
		return -1, conflict("sandbox %s is not running", sb.ID)
	}
	return -1, s.engineErr(err)
}
