// Package fake is an in-memory container engine speaking the
// service's contract (engine.Engine), for tests of the service's rules and
// of the front doors that need no real containers. It passes the same
// conformance suite as the Docker engine (engine/enginetest); what it cannot
// model is a skipped case of that suite, saying so.
//
// Containers are records: they have a status, labels, an address and
// limits, emit the events a real engine would, and run commands through a
// small interpreter (see exec.go) or a test's own ExecFunc. Every method is
// safe for concurrent use. Hooks make any call fail or hang.
package fake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// Call names one call into the engine, for hooks.
type Call struct {
	Method string // "Create", "Start", "Pause", "Exec", ...
	Name   string // the container, "" for calls about none
}

// Hook runs before every call; a non-nil error fails the call with it. A
// hook may block (until ctx ends) to make the call hang.
type Hook func(ctx context.Context, c Call) error

// ExecFunc runs one command in place of the built-in interpreter; builtin
// runs a spec (say, a rewritten one) through it. The spec has the
// container's env and working dir already.
type ExecFunc func(ctx context.Context, name string, spec engine.ExecSpec, builtin func(engine.ExecSpec) (int, error)) (int, error)

// Engine is the fake. The zero value is not usable; call New.
type Engine struct {
	mu         sync.Mutex
	containers map[string]*container
	images     map[string]bool
	registry   map[string]bool // images Pull can fetch
	pullLayers int             // layers Pull reports (SetPullLayers)
	watchers   map[*watcher]struct{}
	hooks      []Hook
	exec       ExecFunc
	down       bool
	shares     bool
	cpus       int
	nextIP     int
	calls      map[string]int
	caps       engine.Capabilities
	disk       diskFake // disk.go
}

type container struct {
	spec     engine.ContainerSpec
	status   engine.Status
	exitCode int
	ip       string
	started  time.Time
	servers  map[int]func(net.Conn)
}

type watcher struct {
	labels map[string]string
	ch     chan engine.Event
	errs   chan error
	done   chan struct{} // closed when the watch ends

	mu    sync.Mutex // guards ended and sends on ch
	ended bool
}

// New makes an engine that has the given images.
func New(images ...string) *Engine {
	e := &Engine{
		containers: map[string]*container{}, images: map[string]bool{}, registry: map[string]bool{},
		watchers: map[*watcher]struct{}{}, shares: true, cpus: 4, calls: map[string]int{},
		caps: Capabilities(),
	}
	for _, i := range images {
		e.images[i] = true
	}
	return e
}

// AddImage makes an image present; AddToRegistry makes one pullable.
func (e *Engine) AddImage(ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.images[ref] = true
}

// AddToRegistry makes Pull of ref succeed.
func (e *Engine) AddToRegistry(ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.registry[ref] = true
}

// SetPullLayers makes Pull report n layers, each done after a call of the
// hooks as "PullLayer" (0, the default: none).
func (e *Engine) SetPullLayers(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pullLayers = n
}

// SetCPUs sets the CPU count Ping reports.
func (e *Engine) SetCPUs(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cpus = n
}

// SetSharesFolder sets what SharesFolder answers.
func (e *Engine) SetSharesFolder(ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shares = ok
}

// SetExec replaces the interpreter (nil restores it).
func (e *Engine) SetExec(fn ExecFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exec = fn
}

// AddHook adds a hook run before every call; the returned func removes it.
func (e *Engine) AddHook(h Hook) (remove func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hooks = append(e.hooks, h)
	i := len(e.hooks) - 1
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.hooks[i] = nil
	}
}

// FailNext makes the next n calls of method fail with err.
func (e *Engine) FailNext(method string, n int, err error) {
	var mu sync.Mutex
	e.AddHook(func(_ context.Context, c Call) error {
		mu.Lock()
		defer mu.Unlock()
		if c.Method != method || n == 0 {
			return nil
		}
		n--
		return err
	})
}

// Hang makes every call of method block until release is called (or the
// call's context ends, which fails it with ctx.Err()). entered receives one
// value per call that has started hanging.
func (e *Engine) Hang(method string) (entered <-chan Call, release func()) {
	in := make(chan Call, 64)
	gate := make(chan struct{})
	var once sync.Once
	remove := e.AddHook(func(ctx context.Context, c Call) error {
		if c.Method != method {
			return nil
		}
		select {
		case in <- c:
		default:
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return in, func() { once.Do(func() { remove(); close(gate) }) }
}

// SetDown makes the engine stop answering (every call fails with
// engine.ErrUnavailable and open watches break) or answer again.
func (e *Engine) SetDown(down bool) {
	e.mu.Lock()
	e.down = down
	var ws []*watcher
	if down {
		for w := range e.watchers {
			ws = append(ws, w)
		}
	}
	e.mu.Unlock()
	for _, w := range ws {
		w.end(fmt.Errorf("fake engine went away: %w", engine.ErrUnavailable))
	}
}

// BreakWatches ends every open watch with err, as a cut event stream does.
func (e *Engine) BreakWatches(err error) {
	e.mu.Lock()
	var ws []*watcher
	for w := range e.watchers {
		ws = append(ws, w)
	}
	e.mu.Unlock()
	for _, w := range ws {
		w.end(err)
	}
}

// Calls says how many times method was called.
func (e *Engine) Calls(method string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[method]
}

// Names lists the containers there are, sorted.
func (e *Engine) Names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.containers))
	for n := range e.containers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Spec returns the spec a container was made from (its limits as updated).
func (e *Engine) Spec(name string) (engine.ContainerSpec, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return engine.ContainerSpec{}, false
	}
	return c.spec, true
}

// Exit ends a container's processes with code, as a kill from outside the
// service would (a died event follows).
func (e *Engine) Exit(name string, code int) {
	e.mu.Lock()
	c, ok := e.containers[name]
	if !ok || c.status == engine.Exited || c.status == engine.Created {
		e.mu.Unlock()
		return
	}
	c.status, c.exitCode = engine.Exited, code
	labels := c.spec.Labels
	e.mu.Unlock()
	e.emit(engine.Event{Kind: engine.EventDied, Name: name, Labels: labels, ExitCode: code})
}

// Vanish removes a container behind the service's back (events follow).
func (e *Engine) Vanish(name string) { _ = e.remove(name) }

// OOM reports that the kernel killed a process of the container.
func (e *Engine) OOM(name string) {
	e.mu.Lock()
	c, ok := e.containers[name]
	e.mu.Unlock()
	if ok {
		e.emit(engine.Event{Kind: engine.EventOOM, Name: name, Labels: c.spec.Labels})
	}
}

// Late delivers an event of a container now, whatever the container does:
// an engine's event stream lags its calls, so an event can come after the
// state it reports has changed again.
func (e *Engine) Late(name string, kind engine.EventKind) {
	e.mu.Lock()
	c, ok := e.containers[name]
	e.mu.Unlock()
	if ok {
		e.emit(engine.Event{Kind: kind, Name: name, Labels: c.spec.Labels})
	}
}

// Serve makes handler take the connections to port of the container, as a
// server listening inside it would.
func (e *Engine) Serve(name string, port int, handler func(net.Conn)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return fmt.Errorf("serve in %s: %w", name, engine.ErrNotFound)
	}
	if c.servers == nil {
		c.servers = map[int]func(net.Conn){}
	}
	c.servers[port] = handler
	return nil
}

// before counts a call and runs the hooks and the outage switch.
func (e *Engine) before(ctx context.Context, method, name string) error {
	e.mu.Lock()
	e.calls[method]++
	hooks := append([]Hook(nil), e.hooks...)
	down := e.down
	e.mu.Unlock()
	if down {
		return fmt.Errorf("%s %s: %w", method, name, engine.ErrUnavailable)
	}
	for _, h := range hooks {
		if h == nil {
			continue
		}
		if err := h(ctx, Call{Method: method, Name: name}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Ping says the engine answers.
func (e *Engine) Ping(ctx context.Context) (engine.Info, error) {
	if err := e.before(ctx, "Ping", ""); err != nil {
		return engine.Info{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return engine.Info{Version: "fake", APIVersion: "fake", OS: "fake/none", Host: "memory://", CPUs: e.cpus}, nil
}

// ImagePresent says whether the image is there.
func (e *Engine) ImagePresent(ctx context.Context, ref string) (bool, error) {
	if err := e.before(ctx, "ImagePresent", ""); err != nil {
		return false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.images[ref], nil
}

// Pull fetches an image from the fake's registry.
func (e *Engine) Pull(ctx context.Context, ref string, progress func(string)) error {
	if err := e.before(ctx, "Pull", ""); err != nil {
		return err
	}
	e.mu.Lock()
	ok, layers := e.registry[ref], e.pullLayers
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("pull %s: no such image in the fake registry: %w", ref, engine.ErrNotFound)
	}
	if progress == nil {
		progress = func(string) {}
	}
	// Layers as Docker reports them; a hook on "PullLayer" (Name: ref)
	// runs before each is done, so a test can hold a pull half way.
	for i := range layers {
		progress(fmt.Sprintf("layer%d: Pulling fs layer", i))
	}
	for i := range layers {
		if err := e.before(ctx, "PullLayer", ref); err != nil {
			return err
		}
		progress(fmt.Sprintf("layer%d: Pull complete", i))
	}
	progress("pulled " + ref)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.images[ref] = true
	return nil
}

// Create makes a container, not started.
func (e *Engine) Create(ctx context.Context, spec engine.ContainerSpec) error {
	if err := e.before(ctx, "Create", spec.Name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.images[spec.Image] {
		return fmt.Errorf("create container %s: image %s: %w", spec.Name, spec.Image, engine.ErrNotFound)
	}
	if _, ok := e.containers[spec.Name]; ok {
		return fmt.Errorf("create container %s: %w", spec.Name, engine.ErrNameInUse)
	}
	e.nextIP++
	spec.Labels = copyMap(spec.Labels)
	e.containers[spec.Name] = &container{spec: spec, status: engine.Created,
		ip: fmt.Sprintf("10.254.%d.%d", e.nextIP/250, e.nextIP%250+2)}
	return nil
}

// Start starts a created (or exited) container.
func (e *Engine) Start(ctx context.Context, name string) error {
	if err := e.before(ctx, "Start", name); err != nil {
		return err
	}
	e.mu.Lock()
	c, ok := e.containers[name]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("start %s: %w", name, engine.ErrNotFound)
	}
	if c.status == engine.Running || c.status == engine.Paused {
		e.mu.Unlock()
		return nil
	}
	c.status, c.exitCode, c.started = engine.Running, 0, time.Now().UTC()
	labels := c.spec.Labels
	e.mu.Unlock()
	e.emit(engine.Event{Kind: engine.EventStarted, Name: name, Labels: labels})
	return nil
}

// Pause freezes a running container.
func (e *Engine) Pause(ctx context.Context, name string) error {
	return e.freeze(ctx, "Pause", name, engine.Running, engine.Paused, engine.EventPaused)
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, name string) error {
	return e.freeze(ctx, "Unpause", name, engine.Paused, engine.Running, engine.EventUnpaused)
}

func (e *Engine) freeze(ctx context.Context, method, name string, from, to engine.Status, kind engine.EventKind) error {
	if err := e.cannot("pause a container", func(c engine.Capabilities) bool { return c.Pause }); err != nil {
		return err
	}
	if err := e.before(ctx, method, name); err != nil {
		return err
	}
	e.mu.Lock()
	c, ok := e.containers[name]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("%s %s: %w", method, name, engine.ErrNotFound)
	}
	if c.status != from {
		st := c.status
		e.mu.Unlock()
		return fmt.Errorf("%s %s: container is %s", method, name, st)
	}
	c.status = to
	labels := c.spec.Labels
	e.mu.Unlock()
	e.emit(engine.Event{Kind: kind, Name: name, Labels: labels})
	return nil
}

// Remove removes a container, whatever it does; a missing one is no error.
func (e *Engine) Remove(ctx context.Context, name string) error {
	if err := e.before(ctx, "Remove", name); err != nil {
		return err
	}
	return e.remove(name)
}

func (e *Engine) remove(name string) error {
	e.mu.Lock()
	c, ok := e.containers[name]
	if !ok {
		e.mu.Unlock()
		return nil
	}
	delete(e.containers, name)
	wasUp := c.status == engine.Running || c.status == engine.Paused
	labels := c.spec.Labels
	e.mu.Unlock()
	if wasUp {
		e.emit(engine.Event{Kind: engine.EventDied, Name: name, Labels: labels, ExitCode: 137})
	}
	e.emit(engine.Event{Kind: engine.EventRemoved, Name: name, Labels: labels})
	return nil
}

// Inspect returns a container's state.
func (e *Engine) Inspect(ctx context.Context, name string) (engine.State, error) {
	if err := e.before(ctx, "Inspect", name); err != nil {
		return engine.State{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return engine.State{}, fmt.Errorf("inspect %s: %w", name, engine.ErrNotFound)
	}
	return engine.State{Status: c.status, ExitCode: c.exitCode, IP: c.ip, Labels: copyMap(c.spec.Labels)}, nil
}

// List returns the containers carrying all the labels.
func (e *Engine) List(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	if err := e.before(ctx, "List", ""); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []engine.Container{}
	for name, c := range e.containers {
		if matches(c.spec.Labels, labels) {
			out = append(out, engine.Container{Name: name, Labels: copyMap(c.spec.Labels), Status: c.status})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Watch streams the events of containers carrying all the labels until ctx
// ends or the stream breaks (SetDown, BreakWatches).
func (e *Engine) Watch(ctx context.Context, labels map[string]string) (<-chan engine.Event, <-chan error) {
	w := &watcher{labels: copyMap(labels), ch: make(chan engine.Event, 256), errs: make(chan error, 1), done: make(chan struct{})}
	if err := e.before(ctx, "Watch", ""); err != nil {
		w.end(err)
		return w.ch, w.errs
	}
	e.mu.Lock()
	e.watchers[w] = struct{}{}
	e.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			w.end(ctx.Err())
		case <-w.done:
		}
		e.mu.Lock()
		delete(e.watchers, w)
		e.mu.Unlock()
	}()
	return w.ch, w.errs
}

// end closes a watch with err: the error first, then the event channel, as
// the Docker engine's adapter does.
func (w *watcher) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended = true
	w.errs <- err
	close(w.done)
	close(w.ch)
}

// send delivers ev without blocking; false when the watcher is 256 events
// behind.
func (w *watcher) send(ev engine.Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return true
	}
	select {
	case w.ch <- ev:
		return true
	default:
		return false
	}
}

// emit delivers an event to the watches whose labels match, in order. A
// watcher that does not keep up (256 events behind) loses its stream, as a
// real engine's would.
func (e *Engine) emit(ev engine.Event) {
	e.mu.Lock()
	var ws []*watcher
	for w := range e.watchers {
		if matches(ev.Labels, w.labels) {
			ws = append(ws, w)
		}
	}
	e.mu.Unlock()
	ev.Labels = copyMap(ev.Labels)
	for _, w := range ws {
		if !w.send(ev) {
			w.end(errors.New("fake engine: event watcher fell behind"))
		}
	}
}

// Exec runs a command in a running container.
func (e *Engine) Exec(ctx context.Context, name string, spec engine.ExecSpec) (int, error) {
	if err := e.before(ctx, "Exec", name); err != nil {
		return -1, err
	}
	if err := e.running(name, "exec in"); err != nil {
		return -1, err
	}
	e.mu.Lock()
	fn := e.exec
	c, ok := e.containers[name]
	if !ok {
		e.mu.Unlock()
		return -1, fmt.Errorf("exec in %s: %w", name, engine.ErrNotFound)
	}
	// As in a real container: the container's env under the command's,
	// its working dir unless the command names one.
	env := append(append([]string{}, c.spec.Env...), spec.Env...)
	if spec.WorkingDir == "" {
		spec.WorkingDir = c.spec.WorkingDir
	}
	host := c.spec.Hostname
	e.mu.Unlock()
	spec.Env = env
	write := func(n int64) bool { return e.chargeDisk(name, n) }
	builtin := func(s engine.ExecSpec) (int, error) { return interpret(ctx, s, host, write) }
	if fn != nil {
		return fn(ctx, name, spec, builtin)
	}
	return builtin(spec)
}

func (e *Engine) running(name, what string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	switch {
	case !ok:
		return fmt.Errorf("%s %s: %w", what, name, engine.ErrNotFound)
	case c.status != engine.Running:
		return fmt.Errorf("%s %s: %w", what, name, engine.ErrNotRunning)
	}
	return nil
}

// DialPort connects to a port inside a running container: a server added
// with Serve, else the connection is refused.
func (e *Engine) DialPort(ctx context.Context, name string, port int) (net.Conn, error) {
	if err := e.before(ctx, "DialPort", name); err != nil {
		return nil, err
	}
	if err := e.running(name, "dial"); err != nil {
		return nil, err
	}
	e.mu.Lock()
	h := e.containers[name].servers[port]
	e.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("dial %s:%d: nothing listens: %w", name, port, syscall.ECONNREFUSED)
	}
	client, server := net.Pipe()
	go h(server)
	return client, nil
}

// SharesFolder answers as SetSharesFolder said (true by default).
func (e *Engine) SharesFolder(ctx context.Context, dir, image string, labels map[string]string) (bool, error) {
	if err := e.before(ctx, "SharesFolder", ""); err != nil {
		return false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.shares, nil
}

// Stats reports a container's (made-up, steady) use.
func (e *Engine) Stats(ctx context.Context, name string) (engine.Stats, error) {
	if err := e.before(ctx, "Stats", name); err != nil {
		return engine.Stats{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return engine.Stats{}, fmt.Errorf("stats %s: %w", name, engine.ErrNotFound)
	}
	st := engine.Stats{MemoryLimitBytes: c.spec.MemoryBytes, StartedAt: c.started, DiskUsedBytes: 4 << 20}
	if c.status == engine.Running {
		st.CPUCores, st.MemoryUsedBytes = 0.01, 8<<20
	}
	return st, nil
}

// UpdateLimits changes a container's CPU and memory limits.
func (e *Engine) UpdateLimits(ctx context.Context, name string, nanoCPUs, memoryBytes int64) error {
	if err := e.cannot("update a container's limits", func(c engine.Capabilities) bool { return c.UpdateLimits }); err != nil {
		return err
	}
	if err := e.before(ctx, "UpdateLimits", name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return fmt.Errorf("update limits of %s: %w", name, engine.ErrNotFound)
	}
	c.spec.NanoCPUs, c.spec.MemoryBytes = nanoCPUs, memoryBytes
	return nil
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
