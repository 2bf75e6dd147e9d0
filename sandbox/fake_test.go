package sandbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

// The service's rules, tested on the fake engine (engine/fake): no
// Docker, seconds for the package. The fake passes the same conformance
// suite as the Docker engine, so what holds here holds there.

const testImage = "rtemu-test/base:1"

// clock is a controllable time source for the service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// statusLog is a store that checks every status write against the state
// machine: a write that changes a status along an edge the table does not
// have fails the test.
type statusLog struct {
	*store.Store
	t *testing.T
}

func (s statusLog) UpdateSandbox(ctx context.Context, id string, fn func(*sandbox.Sandbox) error) (*sandbox.Sandbox, error) {
	var from sandbox.Status
	out, err := s.Store.UpdateSandbox(ctx, id, func(sb *sandbox.Sandbox) error {
		from = sb.Status
		return fn(sb)
	})
	if err == nil && out.Status != from && !allowed(from, out.Status) {
		s.t.Errorf("status written along no edge of the table: %s → %s (sandbox %s)", from, out.Status, id)
	}
	return out, err
}

func allowed(from, to sandbox.Status) bool {
	for _, s := range sandbox.Transitions()[from] {
		if s == to {
			return true
		}
	}
	return false
}

type env struct {
	t     *testing.T
	ctx   context.Context
	svc   *sandbox.Service
	eng   *fake.Engine
	st    *store.Store
	clock *clock
}

type envOption func(*sandbox.Config)

// newEnv makes a service on the fake engine and a fresh store, not yet
// started (start it with e.start, after arranging the engine and records).
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := fake.New(testImage)
	cfg := sandbox.Config{Store: statusLog{st, t}, Engine: eng, InstanceID: st.InstanceID(),
		Templates: []sandbox.Template{{Name: "base", Image: testImage}},
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc := sandbox.New(cfg)
	c := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	svc.SetClock(c.Now)
	return &env{t: t, ctx: ctx, svc: svc, eng: eng, st: st, clock: c}
}

func (e *env) start() *env {
	e.t.Helper()
	if err := e.svc.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.svc.Close)
	return e
}

// started makes a service on the fake and starts it.
func started(t *testing.T, opts ...envOption) *env { return newEnv(t, opts...).start() }

func (e *env) get(id string) *sandbox.Sandbox {
	e.t.Helper()
	sb, err := e.svc.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return sb
}

// waitStatus waits for a sandbox to reach a status.
func (e *env) waitStatus(id string, want sandbox.Status) *sandbox.Sandbox {
	e.t.Helper()
	var sb *sandbox.Sandbox
	testwait.Check(e.t, 10*time.Second, func() error {
		var err error
		if sb, err = e.svc.Get(e.ctx, id); err != nil {
			return err
		}
		if sb.Status != want {
			return fmt.Errorf("sandbox %s is %s (%q), want %s", id, sb.Status, sb.Error, want)
		}
		return nil
	})
	return sb
}

// running creates a sandbox and waits for it to run.
func (e *env) running(p sandbox.CreateParams) *sandbox.Sandbox {
	e.t.Helper()
	if p.Template == "" {
		p.Template = "base"
	}
	sb, err := e.svc.Create(e.ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.waitStatus(sb.ID, sandbox.StatusRunning)
}

// record inserts a sandbox record as an earlier rtemu would have left it.
func (e *env) record(id string, status sandbox.Status) *sandbox.Sandbox {
	e.t.Helper()
	now := e.clock.Now()
	sb := &sandbox.Sandbox{ID: id, Template: "base", Image: testImage, Status: status, Tags: []string{},
		Env: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	if err := e.st.InsertSandbox(e.ctx, sb); err != nil {
		e.t.Fatal(err)
	}
	return sb
}

// container makes a container of this instance for a sandbox id, started
// unless status is created, paused if it is paused, exited if exited.
func (e *env) container(id string, status string) string {
	e.t.Helper()
	name := "rtemu-" + id
	spec := fakeSpec(name, map[string]string{sandbox.LabelSandbox: id, sandbox.LabelInstance: e.svc.Instance()})
	if err := e.eng.Create(e.ctx, spec); err != nil {
		e.t.Fatal(err)
	}
	if status != "created" {
		if err := e.eng.Start(e.ctx, name); err != nil {
			e.t.Fatal(err)
		}
	}
	switch status {
	case "paused":
		if err := e.eng.Pause(e.ctx, name); err != nil {
			e.t.Fatal(err)
		}
	case "exited":
		e.eng.Exit(name, 1)
	}
	return name
}

func (e *env) has(name string) bool {
	for _, n := range e.eng.Names() {
		if n == name {
			return true
		}
	}
	return false
}

func (e *env) events(id string) []string {
	e.t.Helper()
	p, err := e.svc.Activity(e.ctx, id, sandbox.ActivityFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := len(p.Items) - 1; i >= 0; i-- {
		out = append(out, p.Items[i].Type)
	}
	return out
}

func (e *env) hasEvent(id, typ string) bool {
	for _, ev := range e.events(id) {
		if ev == typ {
			return true
		}
	}
	return false
}

func fakeSpec(name string, labels map[string]string) engine.ContainerSpec {
	return engine.ContainerSpec{Name: name, Image: testImage, Labels: labels}
}
