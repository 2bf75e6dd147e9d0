// Package agent is the helper rtemu runs inside a sandbox so that a command
// starts in about a millisecond, where a Docker exec costs tens (the engine
// has runc join the container's namespaces for every one).
//
// The agent is the very binary that runs rtemu (or a test of it): the Docker
// driver copies it, with the dynamic loader and C library it needs if it has
// any, into a volume mounted read-only at /.rtemu in every sandbox, and starts
// it with one Docker exec whose stdin and stdout carry this package's frames.
// The agent then runs one command at a time, fork/exec inside the container,
// with the environment, user and working directory a Docker exec would have
// given it (its own), and the host reuses it for the next command.
//
// A binary becomes the agent when this package's init finds EnvServe set,
// before main (or a test's TestMain) runs: importing the package is all it
// takes, as with moby's reexec. The driver imports it.
package agent

import (
	"context"
	"os"
	"sync/atomic"
	"time"
)

// ExecMarker is the environment variable that tags every process of one
// command (its value is Start.Tag), so the command and all it started can be
// found and killed.
const ExecMarker = "RTEMU_EXEC_ID"

// KillByMarker is a /bin/sh script that kills every process of one command
// from outside it (an engine's second exec, where the engine cannot kill an
// exec itself): run it as `sh -c KillByMarker TAG`. It loops because a dying
// shell may have forked in between.
const KillByMarker = `t="` + ExecMarker + `=$0"
for i in 1 2 3 4 5; do
  found=
  for p in /proc/[0-9]*; do
    [ "$p" = "/proc/$$" ] && continue
    if grep -qs "$t" "$p/environ"; then kill -9 "${p#/proc/}" 2>/dev/null; found=1; fi
  done
  [ -z "$found" ] && exit 0
done`

// EnvServe makes the binary serve on its stdin and stdout, then exit: set to
// ServeCommands it runs commands (Serve), set to ServePortsMode it relays
// connections to the sandbox's ports (ServePorts), set to ServeLinkMode it
// opens connections to rtemu's socket for the sandbox and serves both on
// each (ServeLink).
const EnvServe = "RTEMU_AGENT_SERVE"

// The values of EnvServe.
const (
	ServeCommands  = "1"
	ServePortsMode = "ports"
	ServeLinkMode  = "link"
	// ServeLinkAtStart is the hub that the container's own command starts
	// (ServeLinkFromStart): no Docker exec at all.
	ServeLinkAtStart = "link-start"
)

func init() {
	if code, ok := Main(); ok {
		os.Exit(code)
	}
}

// Main serves as EnvServe asks; ok is false when it asks for nothing, and
// the binary is not being run as the agent.
func Main() (code int, ok bool) {
	switch os.Getenv(EnvServe) {
	case ServeCommands:
		return Serve(os.Stdin, os.Stdout), true
	case ServePortsMode:
		return ServePorts(os.Stdin, os.Stdout), true
	case ServeLinkMode:
		return ServeLink(os.Stdin, os.Stdout), true
	case ServeLinkAtStart:
		return ServeLinkFromStart(LinkMount), true
	}
	return 0, false
}

// Drain bounds: once a command has exited, its output is read until the
// pipes close, or until nothing has come for QuietFor (a background child
// still holds them), but never for longer than DrainLimit. The driver's
// Docker exec path uses the same (WaitQuiet).
const (
	QuietFor   = 200 * time.Millisecond
	DrainLimit = 5 * time.Second
)

// WaitQuiet returns when drained closes or ctx ends, or once flowing (a
// count of output bytes) has not moved for QuietFor, or after DrainLimit.
func WaitQuiet(ctx context.Context, drained <-chan struct{}, flowing *atomic.Int64) {
	tick := time.NewTicker(QuietFor / 2)
	defer tick.Stop()
	limit := time.After(DrainLimit)
	last, quiet := flowing.Load(), 0
	for {
		select {
		case <-drained:
			return
		case <-ctx.Done():
			return
		case <-limit:
			return
		case <-tick.C:
			if n := flowing.Load(); n != last {
				last, quiet = n, 0
				continue
			}
			if quiet++; quiet >= 2 {
				return
			}
		}
	}
}
