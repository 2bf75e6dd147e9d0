package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/remotecommand"

	"golang.org/x/sync/singleflight"

	"github.com/rtemu-dev/rtemu/agent"
	agentclient "github.com/rtemu-dev/rtemu/agent/client"
	"github.com/rtemu-dev/rtemu/agent/dist"
	"github.com/rtemu-dev/rtemu/engine"
)

// The exec agent in a pod. An API-server exec costs a request through the
// API server and the kubelet to the container runtime for every command;
// the agent (package agent, the same small program Docker sandboxes run)
// runs commands on an exec stream that stays open, so a command after the
// first is a round trip on that stream and a fork in the pod.
//
//   - Into the pod: every pod has an emptyDir at AgentMount; the first
//     command copies the agent (agent/dist: embedded in rtemu, or built
//     with the local Go toolchain, for the node's architecture) into it
//     through one exec, once per pod and rtemu.
//   - A stream to it: an exec of the agent in its commands mode
//     (agent.EnvServe); client.Exec runs a command on a kept stream or a
//     new one, and client.Pool keeps up to agentsKept streams a pod open
//     between commands.
//   - Anything the agent cannot do (a TTY, an image without /bin/sh or
//     env, a pod made by an older rtemu without the emptyDir, a stream that
//     broke) goes the API-server exec's way, as before.
//   - Pause closes the pod's kept streams and sends later commands the
//     API-server way (which refuses them while the pod is paused).
//   - Ports (port.go): an exec of the agent in its ports mode is the pod's
//     port relay (client.Relays: started on the first dial, closed when
//     idle); a dial is a stream of it, made from inside the pod.
const (
	// AgentMount is where a sandbox's pod has the agent's folder.
	AgentMount = "/.rtemu"
	// agentVolume names the emptyDir.
	agentVolume = "rtemu-agent"
	// agentsKept bounds the idle agent streams kept per pod.
	agentsKept = 4
	// agentIdleFor: a stream idle longer is closed rather than used.
	agentIdleFor = 5 * time.Minute
	// relayStartWait bounds starting a pod's port relay (the agent copied
	// into the pod first if need be), whoever asked for it first.
	relayStartWait = 30 * time.Second
	// agentReadyWait bounds the wait for a new agent's first frame.
	agentReadyWait = 15 * time.Second
	// agentStopWait bounds the wait for a closed stream's agent to exit.
	agentStopWait = 5 * time.Second
)

// startAgent runs the agent at $0 in the mode $1 (agent.EnvServe), by the
// shell its copy needed already: an image without env(1) runs it too.
const startAgent = `export ` + agent.EnvServe + `="$1"; exec "$0"`

// install copies the agent from stdin into the folder, as the name given.
const installAgent = `set -e
f="$1"; t="$f.tmp.$$"
cat > "$t"; chmod 755 "$t"; mv -f "$t" "$f"`

// agents are the engine's agents in pods. Its maps are under mu.
type agents struct {
	cache string // where agent/dist keeps agents ("": its default)

	mu        sync.Mutex
	installed map[string]string // pod → the agent's path in it
	unusable  map[string]string // pod → why commands there go the API-server way
	bins      map[string][]byte // GOARCH → the agent
	archs     map[string]string // node → GOARCH

	// kept holds the streams ready for a command, per pod; it is paused
	// with the pod.
	kept *agentclient.Pool[*conn]
	// relays are the sandboxes' port relays, by sandbox name.
	relays *agentclient.Relays
	end    context.CancelFunc // ends a relay's start

	installs singleflight.Group
}

func newAgents(e *Engine, cache string) *agents {
	ctx, end := context.WithCancel(context.Background())
	return &agents{cache: cache, installed: map[string]string{}, unusable: map[string]string{},
		bins: map[string][]byte{}, archs: map[string]string{},
		kept: agentclient.NewPool(agentclient.PoolOptions[*conn]{Keep: agentsKept, IdleFor: agentIdleFor}),
		relays: agentclient.NewRelays(ctx, agentclient.RelayOptions{
			Open: e.startRelay, IdleFor: agentIdleFor, StartTimeout: relayStartWait,
			Lasting: func(err error) bool { return errors.As(err, new(*unusableError)) },
		}),
		end: end}
}

// conn is one stream to an agent in a pod.
type conn struct {
	r    *bufio.Reader
	w    *agent.FrameWriter
	raw  io.Writer // under w
	once sync.Once
	stop func()
	// endRead ends a read of r under way (and the stream with it).
	endRead func()
}

func (c *conn) Reader() *bufio.Reader      { return c.r }
func (c *conn) Writer() *agent.FrameWriter { return c.w }
func (c *conn) Close()                     { c.once.Do(c.stop) }

// agentHost is what client.Run needs of the engine for one pod.
type agentHost struct {
	e   *Engine
	pod string
}

// KillTagged kills a command whose agent does not answer, by its tag, from
// an API-server exec.
func (h agentHost) KillTagged(_, tag string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.e.stream(ctx, h.pod, []string{"/bin/sh", "-c", killByMarker, tag}, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		h.e.log.Warn("kill a command by its tag", "pod", h.pod, "err", err)
	}
}

// Running says whether the pod's container still runs.
func (h agentHost) Running(ctx context.Context, name string) (bool, error) {
	p, err := h.e.pod(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return stateOf(p).Status == engine.Running, nil
}

// execViaAgent runs spec through an agent in the pod (agentclient.Exec).
// handled is false when no agent could run it: the caller then runs it by
// an API-server exec.
func (e *Engine) execViaAgent(ctx context.Context, name string, spec engine.ExecSpec) (code int, err error, handled bool) {
	if e.agents == nil || spec.Tty {
		return 0, nil, false
	}
	return agentclient.Exec(ctx, podStreams{agentHost{e, podName(name)}}, name, agentclient.Command{
		Argv: spec.Cmd, Env: spec.Env, Dir: spec.WorkingDir, Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr})
}

// podStreams are the streams to the agent in one pod.
type podStreams struct{ agentHost }

func (s podStreams) Stream(ctx context.Context, name string) (agentclient.Conn, bool, error) {
	c, fresh, err := s.e.agentConn(ctx, name, s.pod)
	if err != nil {
		return nil, false, err
	}
	return c, fresh, nil
}

func (s podStreams) Keep(_ string, c agentclient.Conn) { s.e.agents.kept.Put(s.pod, c.(*conn)) }

// Broke: a new agent that broke at once means the pod (or its container)
// went away, or was restarted without the agent's file: the next command
// copies it again.
func (s podStreams) Broke(_ string, _ agentclient.Conn, fresh bool) {
	if fresh {
		s.e.agents.forgetInstall(s.pod)
	}
}

// agentConn gives a kept stream to the pod's agent, or opens a new one
// (fresh), copying the agent into the pod first when it is not there yet.
func (e *Engine) agentConn(ctx context.Context, name, pod string) (c *conn, fresh bool, err error) {
	a := e.agents
	a.mu.Lock()
	why, unusable := a.unusable[pod]
	a.mu.Unlock()
	if unusable {
		return nil, false, &unusableError{why}
	}
	c, ok, err := a.kept.Get(pod)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", engine.ErrNotRunning, err)
	}
	if ok {
		return c, false, nil
	}
	path, err := e.agentPath(ctx, name, pod)
	if err != nil {
		return nil, false, err
	}
	c, err = e.openAgent(ctx, pod, path, agent.ServeCommands)
	return c, true, err
}

// agentPath is where the agent is in the pod, copied there first if need
// be; an *unusableError when the pod cannot run it.
func (e *Engine) agentPath(ctx context.Context, name, pod string) (string, error) {
	a := e.agents
	a.mu.Lock()
	why, unusable := a.unusable[pod]
	path, installed := a.installed[pod]
	a.mu.Unlock()
	switch {
	case unusable:
		return "", &unusableError{why}
	case installed:
		return path, nil
	}
	v, err, _ := a.installs.Do(pod, func() (any, error) { return e.installAgentIn(ctx, name, pod) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// startRelay starts the sandbox's port relay: the agent in its ports mode
// on an exec stream (agentclient.RelayOptions.Open).
func (e *Engine) startRelay(ctx context.Context, name string) (*agent.Relay, error) {
	pod := podName(name)
	path, err := e.agentPath(ctx, name, pod)
	if err != nil {
		return nil, err
	}
	c, err := e.openAgent(ctx, pod, path, agent.ServePortsMode)
	if err != nil {
		return nil, err
	}
	m, err := agent.NewRelay(c.r, c.raw, func() { c.Close(); c.endRead() })
	if err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

// unusableError says why the agent cannot run in a pod: its commands go
// the API-server way, its ports by port-forward.
type unusableError struct{ why string }

func (e *unusableError) Error() string { return e.why }

// installAgentIn copies the agent for the pod's node into the pod's agent
// folder. A pod that cannot take it (no folder: made by an older rtemu; no
// shell) is remembered: its commands go the API-server way.
func (e *Engine) installAgentIn(ctx context.Context, name, pod string) (string, error) {
	p, err := e.running(ctx, name)
	if err != nil {
		return "", err
	}
	if !hasAgentVolume(p) {
		return "", e.agents.markUnusable(pod, "the pod has no agent folder (made by an older rtemu)")
	}
	arch, err := e.nodeArch(ctx, p.Spec.NodeName)
	if err != nil {
		return "", err
	}
	bin, err := e.agentBinary(ctx, arch)
	if err != nil {
		return "", e.agents.markUnusable(pod, err.Error())
	}
	sum := sha256.Sum256(bin)
	path := AgentMount + "/rtemu-agent-" + hex.EncodeToString(sum[:6])
	var errb bytes.Buffer
	code, err := e.stream(ctx, pod, []string{"/bin/sh", "-c", installAgent, "rtemu", path},
		remotecommand.StreamOptions{Stdin: bytes.NewReader(bin), Stdout: io.Discard, Stderr: &errb})
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", e.agents.markUnusable(pod, fmt.Sprintf("copying the agent into the pod: exit %d: %s", code, errb.String()))
	}
	e.agents.mu.Lock()
	e.agents.installed[pod] = path
	e.agents.mu.Unlock()
	return path, nil
}

func hasAgentVolume(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.Name == agentVolume && v.EmptyDir != nil {
			return true
		}
	}
	return false
}

// nodeArch is the node's architecture, as GOARCH.
func (e *Engine) nodeArch(ctx context.Context, node string) (string, error) {
	a := e.agents
	a.mu.Lock()
	arch, ok := a.archs[node]
	a.mu.Unlock()
	if ok {
		return arch, nil
	}
	n, err := e.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			// Without the right to read nodes, the agent is built for
			// rtemu's own architecture's most common peer: amd64.
			return "amd64", nil
		}
		return "", wrap(err, "get node "+node)
	}
	arch = n.Status.NodeInfo.Architecture
	if arch == "" {
		arch = "amd64"
	}
	a.mu.Lock()
	a.archs[node] = arch
	a.mu.Unlock()
	return arch, nil
}

// agentBinary is the agent for linux/arch, read once.
func (e *Engine) agentBinary(ctx context.Context, arch string) ([]byte, error) {
	a := e.agents
	a.mu.Lock()
	b, ok := a.bins[arch]
	a.mu.Unlock()
	if ok {
		return b, nil
	}
	path, _, err := dist.Static(ctx, arch, a.cache)
	if err != nil {
		return nil, fmt.Errorf("no exec agent for linux/%s: %w", arch, err)
	}
	if b, err = os.ReadFile(path); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.bins[arch] = b
	a.mu.Unlock()
	return b, nil
}

// openAgent starts the agent at path in the pod, in the mode given
// (agent.EnvServe), on an exec stream of its own and waits for its first
// frame.
func (e *Engine) openAgent(ctx context.Context, pod, path, mode string) (*conn, error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := e.stream(sctx, pod, []string{"/bin/sh", "-c", startAgent, path, mode},
			remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Stderr: io.Discard})
		if err == nil {
			err = io.EOF
		}
		outW.CloseWithError(err)
		inR.CloseWithError(err)
	}()
	// Closing ends the agent's stdin, so it exits and the stream ends by
	// itself (its output read to the end meanwhile); one that has not
	// ended in agentStopWait is cut.
	c := &conn{r: bufio.NewReader(outR), w: agent.NewFrameWriter(inW), raw: inW, endRead: func() { outR.Close() }, stop: func() {
		inW.Close()
		go func() { _, _ = io.Copy(io.Discard, outR) }()
		go func() {
			select {
			case <-done:
			case <-time.After(agentStopWait):
			}
			cancel()
		}()
	}}
	// A stream that gives nothing in time is closed, which ends the read.
	t := time.AfterFunc(agentReadyWait, c.Close)
	typ, p, err := agent.ReadFrame(c.r)
	stopped := !t.Stop()
	if err != nil || typ != agent.FrameReady || string(p) != agent.Version {
		c.Close()
		if stopped {
			return nil, fmt.Errorf("start the agent in %s: no word from it in %v", pod, agentReadyWait)
		}
		return nil, fmt.Errorf("start the agent in %s: frame %q %q: %v", pod, typ, p, err)
	}
	return c, nil
}

// markUnusable remembers why commands in the pod go the API-server way.
func (a *agents) markUnusable(pod, why string) error {
	a.mu.Lock()
	a.unusable[pod] = why
	a.mu.Unlock()
	return &unusableError{why}
}

// forgetInstall makes the next command copy the agent again.
func (a *agents) forgetInstall(pod string) {
	a.mu.Lock()
	delete(a.installed, pod)
	a.mu.Unlock()
}

// setPaused marks the pod paused (closing its kept streams: a stopped
// agent's stream would not serve again) or not.
func (a *agents) setPaused(pod string, paused bool) {
	a.kept.SetPaused(pod, paused)
	if paused {
		a.kept.CloseIdle(pod)
	}
}

// forget drops all the engine knows of the sandbox's pod (it was removed).
func (a *agents) forget(name, pod string) {
	a.relays.Forget(name)
	a.kept.Forget(pod)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.installed, pod)
	delete(a.unusable, pod)
}

// close ends every kept stream and port relay.
func (a *agents) close() {
	a.end()
	a.relays.Close()
	a.kept.Close()
}
