package kubernetes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rtemu-dev/rtemu/agent"
	"github.com/rtemu-dev/rtemu/engine"
)

// execMarker tags every process an exec starts (the same variable as
// agent.ExecMarker). The API server cannot kill an exec, and the sandbox's
// own processes must not be killed, so a cancelled exec is ended by a
// second exec killing every process whose environment carries the tag.
const execMarker = agent.ExecMarker

// killByMarker kills a cancelled exec's processes by their tag.
const killByMarker = agent.KillByMarker

// execWrapper gives an exec what the pods/exec subresource lacks: the
// environment (and the tag) and the working directory. It runs as
// sh -c WRAPPER rtemu-exec DIR SIZE HOLD NAME=VALUE... -- ARGV...
// SIZE ("ROWS COLS", or empty) is set on the terminal before the command
// starts: the API server sends the first size only once the command runs,
// and the first prompt must already have the right width.
//
// HOLD (non-empty for a command given standard input without a terminal)
// runs the command as the wrapper's child instead of in its place, so the
// wrapper holds the exec's stdout and stderr open until the command ends.
// containerd's CRI closes an exec's stdin stream as soon as its stdout
// reaches EOF, dropping what the client sent but the command has not read
// yet: a command that sends its stdout elsewhere (sh -c 'cat > FILE', the
// SSH gateway's SFTP uploads) got only the first 32–192 KiB of its input
// (containerd issues 12734 and 13934).
const execWrapper = `d=$1; sz=$2; hold=$3; shift 3
if [ -n "$sz" ]; then stty rows "${sz% *}" cols "${sz#* }" 2>/dev/null; fi
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do export "$1"; shift; done
shift
if [ -n "$d" ]; then cd "$d" || exit 126; fi
if [ -n "$hold" ]; then "$@"; exit $?; fi
exec "$@"`

// Exec runs a command in the sandbox's running container through the API
// server and returns its exit code. When ctx ends first, every process the
// command started is killed and the error is ctx.Err(). A paused or
// stopped sandbox gives ErrNotRunning.
func (e *Engine) Exec(ctx context.Context, name string, spec engine.ExecSpec) (int, error) {
	if code, err, ok := e.execViaAgent(ctx, name, spec); ok {
		return code, err
	}
	p, err := e.running(ctx, name)
	if err != nil {
		return -1, err
	}
	tag := newTag()
	size := ""
	if spec.Tty && spec.Size != nil && spec.Size.Rows > 0 && spec.Size.Cols > 0 {
		size = fmt.Sprintf("%d %d", spec.Size.Rows, spec.Size.Cols)
	}
	hold := ""
	if spec.Stdin != nil && !spec.Tty {
		hold = "1"
	}
	argv := append([]string{"/bin/sh", "-c", execWrapper, "rtemu-exec", spec.WorkingDir, size, hold}, spec.Env...)
	argv = append(append(argv, execMarker+"="+tag, "--"), spec.Cmd...)
	// client-go may still be writing when a cancelled exec returns: the
	// writers are shut before Exec returns, so nothing is written after.
	stdout, stderr := &gated{w: orDiscard(spec.Stdout)}, &gated{w: orDiscard(spec.Stderr)}
	defer stdout.shut()
	defer stderr.shut()
	opts := remotecommand.StreamOptions{Stdin: spec.Stdin, Stdout: stdout, Stderr: stderr, Tty: spec.Tty}
	if spec.Tty {
		opts.Stderr = nil
		opts.TerminalSizeQueue = &sizeQueue{ctx: ctx, first: spec.Size, next: spec.Resize}
	}
	code, err := e.stream(ctx, p.Name, argv, opts)
	if ctx.Err() != nil {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, kerr := e.stream(kctx, p.Name, []string{"/bin/sh", "-c", killByMarker, tag}, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard}); kerr != nil {
			e.log.Warn("kill a cancelled exec", "sandbox", name, "err", kerr)
		}
		return -1, ctx.Err()
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", name, err)
	}
	return code, nil
}

// stream runs argv in the pod's container and returns its exit code: over
// WebSocket (the exec protocol v5), falling back to SPDY where the API
// server or a proxy in between does not upgrade to WebSocket, as kubectl
// does.
func (e *Engine) stream(ctx context.Context, pod string, argv []string, opts remotecommand.StreamOptions) (int, error) {
	req := e.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(e.ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: containerName, Command: argv,
			Stdin: opts.Stdin != nil, Stdout: opts.Stdout != nil, Stderr: opts.Stderr != nil, TTY: opts.Tty,
		}, e.cs.params)
	ws, err := remotecommand.NewWebSocketExecutor(e.cfg, "GET", req.URL().String())
	if err != nil {
		return -1, err
	}
	sp, err := remotecommand.NewSPDYExecutor(e.cfg, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return -1, err
	}
	err = ex.StreamWithContext(ctx, opts)
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.Code, nil
	}
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "not found") || strings.Contains(msg, "does not have a host assigned") ||
			strings.Contains(msg, "container not found") || strings.Contains(msg, "cannot exec") {
			return -1, fmt.Errorf("%w: %v", engine.ErrNotRunning, err)
		}
		return -1, wrap(err, "exec")
	}
	return 0, nil
}

// run runs a short script of the engine's own in the pod and returns its
// standard output; a non-zero exit is an error with its standard error.
func (e *Engine) run(ctx context.Context, pod, script string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	argv := append([]string{"/bin/sh", "-c", script, "rtemu"}, args...)
	code, err := e.stream(ctx, pod, argv, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
	if err != nil {
		return "", err
	}
	if code != 0 {
		return out.String(), fmt.Errorf("exit code %d: %s", code, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// sizeQueue hands the exec its terminal size: the first one, then each
// change, until ctx ends or the changes end.
type sizeQueue struct {
	ctx   context.Context
	first *engine.WindowSize
	next  <-chan engine.WindowSize
	sent  bool
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	if !q.sent {
		q.sent = true
		if q.first != nil {
			return &remotecommand.TerminalSize{Width: uint16(q.first.Cols), Height: uint16(q.first.Rows)}
		}
	}
	select {
	case <-q.ctx.Done():
		return nil
	case s, ok := <-q.next:
		if !ok {
			return nil
		}
		return &remotecommand.TerminalSize{Width: uint16(s.Cols), Height: uint16(s.Rows)}
	}
}

// gated passes writes on until shut, and drops them after.
type gated struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (g *gated) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gated) shut() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
}

func newTag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// stopAll stops (or continues) every process of the sandbox but PID 1 (the
// pod's pause process) and the script's own shell, and loops until none is
// left running: a process that forked while it was being stopped leaves a
// child that the next round stops. Only shell builtins run while others
// are stopped.
const stopAll = `sig=$1
for i in 1 2 3 4 5 6 7 8 9 10; do
  kill -"$sig" -1 2>/dev/null
  [ "$sig" = CONT ] && exit 0
  left=
  for p in /proc/[0-9]*; do
    n=${p#/proc/}
    [ "$n" = 1 ] || [ "$n" = $$ ] && continue
    read -r line < "$p/stat" 2>/dev/null || continue
    s=${line##*") "}; s=${s%% *}
    case $s in T|t|Z|X) ;; *) left=1 ;; esac
  done
  [ -z "$left" ] && exit 0
  sleep 0.05 2>/dev/null
done
echo "processes kept running after 10 rounds of SIGSTOP" >&2
exit 1`

// Pause stops every process of the sandbox but PID 1 with SIGSTOP (memory
// kept) and marks the pod paused, so that execs and dials answer
// ErrNotRunning until Unpause. Kubernetes has no pause of its own.
func (e *Engine) Pause(ctx context.Context, name string) error {
	p, err := e.running(ctx, name)
	if err != nil {
		return err
	}
	e.agentsPaused(p.Name, true)
	if err := e.markPaused(ctx, p.Name, true); err != nil {
		e.agentsPaused(p.Name, false)
		return wrap(err, "pause "+name)
	}
	if _, err := e.run(ctx, p.Name, stopAll, "STOP"); err != nil {
		// Whatever was stopped goes on again.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = e.run(cctx, p.Name, stopAll, "CONT")
		_ = e.markPaused(cctx, p.Name, false)
		e.agentsPaused(p.Name, false)
		return fmt.Errorf("pause %s: %w", name, err)
	}
	return nil
}

// Unpause continues the processes Pause stopped.
func (e *Engine) Unpause(ctx context.Context, name string) error {
	p, err := e.pod(ctx, name)
	if err != nil {
		return err
	}
	if st := stateOf(p); st.Status != engine.Paused {
		return fmt.Errorf("unpause %s: it is %s, not paused: %w", name, st.Status, engine.ErrNotRunning)
	}
	if _, err := e.run(ctx, p.Name, stopAll, "CONT"); err != nil {
		return fmt.Errorf("unpause %s: %w", name, err)
	}
	if err := e.markPaused(ctx, p.Name, false); err != nil {
		return wrap(err, "unpause "+name)
	}
	e.agentsPaused(p.Name, false)
	return nil
}

// agentsPaused tells the pod's agents whether it is paused.
func (e *Engine) agentsPaused(pod string, paused bool) {
	if e.agents != nil {
		e.agents.setPaused(pod, paused)
	}
}

// markPaused sets or clears the pod's paused annotation.
func (e *Engine) markPaused(ctx context.Context, pod string, paused bool) error {
	patch := []byte(`{"metadata":{"annotations":{"` + annPaused + `":null}}}`)
	if paused {
		patch = []byte(`{"metadata":{"annotations":{"` + annPaused + `":"` + time.Now().UTC().Format(time.RFC3339) + `"}}}`)
	}
	_, err := e.cs.CoreV1().Pods(e.ns).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
