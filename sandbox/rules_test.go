package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// Every pair of statuses, walked through the one function that changes a
// status: the table's edges are taken, every other pair is refused as a
// conflict and leaves the record as it was.
func TestTransitionTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // not started: the records are the test's alone
	n := 0
	for _, from := range sandbox.Statuses {
		for _, to := range sandbox.Statuses {
			n++
			id := fmt.Sprintf("sandbox-t%011d", n)
			e.record(id, from)
			err := e.svc.Transition(e.ctx, id, to)
			got := e.get(id).Status
			if allowed(from, to) {
				if err != nil || got != to {
					t.Errorf("%s → %s: %v, now %s; the table allows it", from, to, err, got)
				}
				continue
			}
			if !errors.Is(err, sandbox.ErrConflict) || got != from {
				t.Errorf("%s → %s: %v, now %s; want a conflict and %s", from, to, err, got, from)
			}
		}
	}
}

// No write but a transition changes a status: the service's other write
// refuses one, and in the package's code only transitionIf assigns a
// sandbox's Status (a new record starts creating, in Create; restoredRecord
// rewrites the records of a state archive before they are the store's:
// each comes in as a new record, creating, or destroyed).
func TestOnlyTransitionWritesStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.record("sandbox-nostatus0001", sandbox.StatusRunning)
	err := e.svc.UpdateRecord(e.ctx, "sandbox-nostatus0001", func(sb *sandbox.Sandbox) error {
		sb.Status = sandbox.StatusPaused
		return nil
	})
	if !errors.Is(err, sandbox.ErrStatusWrite) || e.get("sandbox-nostatus0001").Status != sandbox.StatusRunning {
		t.Fatalf("a status written by update: %v", err)
	}

	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.AssignStmt:
					for _, l := range n.Lhs {
						if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Status" && fn.Name.Name != "transitionIf" && fn.Name.Name != "restoredRecord" {
							t.Errorf("%s: %s assigns a Status outside transitionIf", fset.Position(n.Pos()), fn.Name.Name)
						}
					}
				case *ast.CompositeLit:
					if id, ok := n.Type.(*ast.Ident); !ok || id.Name != "Sandbox" {
						return true
					}
					for _, el := range n.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if k, _ := kv.Key.(*ast.Ident); ok && k != nil && k.Name == "Status" {
							if v, _ := kv.Value.(*ast.Ident); v == nil || v.Name != "StatusCreating" || fn.Name.Name != "Create" {
								t.Errorf("%s: %s makes a Sandbox with a status other than creating", fset.Position(n.Pos()), fn.Name.Name)
							}
						}
					}
				}
				return true
			})
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := started(t)
	sb := e.running(sandbox.CreateParams{Env: map[string]string{"A": "1"}})
	if sb.IP == "" || !e.has(sb.ContainerName()) {
		t.Fatalf("running sandbox without its address or container: %+v", sb)
	}
	if via, out, err := e.svc.Pause(e.ctx, sb.ID); err != nil || via != sandbox.StatusPausing || out.Status != sandbox.StatusPaused || out.PausedAt == nil {
		t.Fatalf("Pause = %s, %+v, %v", via, out, err)
	}
	if st, _ := e.eng.Inspect(e.ctx, sb.ContainerName()); st.Status != engine.Paused {
		t.Fatalf("engine: %s", st.Status)
	}
	// Repeats are harmless.
	if via, _, err := e.svc.Pause(e.ctx, sb.ID); err != nil || via != sandbox.StatusPaused {
		t.Fatalf("second Pause = %s, %v", via, err)
	}
	if via, out, err := e.svc.Resume(e.ctx, sb.ID); err != nil || via != sandbox.StatusResuming || out.Status != sandbox.StatusRunning {
		t.Fatalf("Resume = %s, %+v, %v", via, out, err)
	}
	res, err := e.svc.Exec(e.ctx, sb.ID, sandbox.ExecParams{Command: "echo $A; echo oops >&2; exit 4"})
	if err != nil || res.Stdout.String() != "1\n" || res.Stderr.String() != "oops\n" || res.ExitCode != 4 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	res, err = e.svc.Exec(e.ctx, sb.ID, sandbox.ExecParams{Command: "sleep 30", Timeout: 100 * time.Millisecond})
	if err != nil || !res.TimedOut || res.ExitCode != 124 {
		t.Fatalf("Exec past its timeout = %+v, %v", res, err)
	}
	out, err := e.svc.Delete(e.ctx, sb.ID, false)
	if err != nil || out.Status != sandbox.StatusDestroyed || out.DestroyedAt == nil || e.has(sb.ContainerName()) {
		t.Fatalf("Delete = %+v, %v; containers %v", out, err, e.eng.Names())
	}
	want := []string{"created", "running", "paused", "resumed", "exec", "exec", "destroyed"}
	testwait.Check(t, 10*time.Second, func() error {
		if strings.Join(e.events(sb.ID), " ") == strings.Join(want, " ") {
			return nil
		}
		return fmt.Errorf("feed %v, want %v", e.events(sb.ID), want)
	})
	// A destroyed sandbox refuses what only a live one does.
	if _, _, err := e.svc.Pause(e.ctx, sb.ID); !errors.Is(err, sandbox.ErrConflict) {
		t.Fatalf("Pause of a destroyed sandbox = %v", err)
	}
	if _, err := e.svc.Exec(e.ctx, sb.ID, sandbox.ExecParams{Command: "true"}); !errors.Is(err, sandbox.ErrConflict) {
		t.Fatalf("Exec in a destroyed sandbox = %v", err)
	}
}

// A pause or resume whose engine call fails goes back to where it was; one
// whose container is gone puts the sandbox in error.
func TestFreezeUndoneOnEngineFailure(t *testing.T) {
	t.Parallel()
	e := started(t)
	sb := e.running(sandbox.CreateParams{})
	e.eng.FailNext("Pause", 1, errors.New("cgroup freezer: device busy"))
	if _, _, err := e.svc.Pause(e.ctx, sb.ID); err == nil || !strings.Contains(err.Error(), "device busy") {
		t.Fatalf("Pause with a failing engine = %v", err)
	}
	if got := e.get(sb.ID).Status; got != sandbox.StatusRunning {
		t.Fatalf("after a failed pause: %s, want running", got)
	}
	if _, _, err := e.svc.Pause(e.ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	e.eng.FailNext("Unpause", 1, errors.New("cgroup freezer: thaw failed"))
	if _, _, err := e.svc.Resume(e.ctx, sb.ID); err == nil {
		t.Fatal("Resume with a failing engine: no error")
	}
	if got := e.get(sb.ID).Status; got != sandbox.StatusPaused {
		t.Fatalf("after a failed resume: %s, want paused", got)
	}
	e.eng.FailNext("Unpause", 1, fmt.Errorf("unpause: %w", engine.ErrNotFound))
	if _, _, err := e.svc.Resume(e.ctx, sb.ID); !errors.Is(err, sandbox.ErrConflict) || !strings.Contains(err.Error(), "lost its container") {
		t.Fatalf("Resume of a sandbox whose container is gone = %v", err)
	}
	if got := e.get(sb.ID); got.Status != sandbox.StatusError || got.Error == "" {
		t.Fatalf("after its container was found gone: %s %q, want error", got.Status, got.Error)
	}
	// A pause whose engine call hangs is pausing meanwhile, and a second
	// pause is a harmless repeat.
	sb2 := e.running(sandbox.CreateParams{})
	entered, release := e.eng.Hang("Pause")
	done := make(chan error, 1)
	go func() { _, _, err := e.svc.Pause(e.ctx, sb2.ID); done <- err }()
	<-entered
	if got := e.get(sb2.ID).Status; got != sandbox.StatusPausing {
		t.Fatalf("while the engine pauses: %s", got)
	}
	if via, _, err := e.svc.Pause(e.ctx, sb2.ID); err != nil || via != sandbox.StatusPausing {
		t.Fatalf("Pause while pausing = %s, %v", via, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.waitStatus(sb2.ID, sandbox.StatusPaused)
}

// Each branch of reconcile, from records and containers an earlier rtemu
// (or someone behind its back) left.
func TestReconcileBranches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type want struct {
		status    sandbox.Status
		container bool   // the container is there after
		errHas    string // in the record's error
	}
	cases := []struct {
		name      string
		record    sandbox.Status // "" = none
		container string         // "" = none; created, running, paused, exited
		want      want
	}{
		{"vanished", sandbox.StatusRunning, "", want{sandbox.StatusError, false, "container is gone"}},
		{"stopped", sandbox.StatusRunning, "exited", want{sandbox.StatusError, true, "stopped outside rtemu"}},
		{"paused behind rtemu's back", sandbox.StatusRunning, "paused", want{sandbox.StatusPaused, true, ""}},
		{"resumed behind rtemu's back", sandbox.StatusPaused, "running", want{sandbox.StatusRunning, true, ""}},
		{"caught mid-pause", sandbox.StatusPausing, "paused", want{sandbox.StatusPaused, true, ""}},
		{"caught mid-pause, not done", sandbox.StatusPausing, "running", want{sandbox.StatusRunning, true, ""}},
		{"caught mid-resume", sandbox.StatusResuming, "running", want{sandbox.StatusRunning, true, ""}},
		{"caught mid-create, container running", sandbox.StatusCreating, "running", want{sandbox.StatusRunning, true, ""}},
		{"caught mid-create, container made", sandbox.StatusCreating, "created", want{sandbox.StatusRunning, true, ""}},
		{"caught mid-create, no container", sandbox.StatusCreating, "", want{sandbox.StatusRunning, true, ""}},
		{"caught mid-destroy", sandbox.StatusDestroying, "running", want{sandbox.StatusDestroyed, false, ""}},
		{"failed with a container left", sandbox.StatusFailed, "exited", want{sandbox.StatusFailed, false, ""}},
		{"error whose container runs", sandbox.StatusError, "running", want{sandbox.StatusRunning, true, ""}},
		{"error whose container is paused", sandbox.StatusError, "paused", want{sandbox.StatusPaused, true, ""}},
		{"orphan", "", "running", want{"", false, ""}},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = fmt.Sprintf("sandbox-recon%07d", i)
		if c.record != "" {
			e.record(ids[i], c.record)
		}
		if c.container != "" {
			e.container(ids[i], c.container)
		}
	}
	e.start()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "rtemu-" + ids[i]
			if c.record != "" {
				sb := e.waitStatus(ids[i], c.want.status)
				if !strings.Contains(sb.Error, c.want.errHas) {
					t.Errorf("error %q lacks %q", sb.Error, c.want.errHas)
				}
			}
			testwait.Check(t, 10*time.Second, func() error {
				if e.has(name) == c.want.container {
					return nil
				}
				return fmt.Errorf("container there: %v, want %v", e.has(name), c.want.container)
			})
		})
	}
	testwait.Check(t, 10*time.Second, func() error {
		if e.hasEvent(ids[12], "recovered") {
			return nil
		}
		return fmt.Errorf("a healed sandbox's feed lacks recovered: %v", e.events(ids[12]))
	})
}

// Containers changed behind the service's back while it watches: their
// sandboxes follow the engine's events.
func TestEngineEventsFollowed(t *testing.T) {
	t.Parallel()
	e := started(t)
	died, gone, paused := e.running(sandbox.CreateParams{}), e.running(sandbox.CreateParams{}), e.running(sandbox.CreateParams{})
	e.eng.Exit(died.ContainerName(), 137)
	e.eng.Vanish(gone.ContainerName())
	if err := e.eng.Pause(e.ctx, paused.ContainerName()); err != nil {
		t.Fatal(err)
	}
	if sb := e.waitStatus(died.ID, sandbox.StatusError); !strings.Contains(sb.Error, "exit code 137") {
		t.Errorf("died: %q", sb.Error)
	}
	// A removal of a running container ends it first (die, then destroy, as
	// Docker reports a forced removal).
	if sb := e.waitStatus(gone.ID, sandbox.StatusError); !strings.Contains(sb.Error, "outside rtemu") {
		t.Errorf("gone: %q", sb.Error)
	}
	if sb := e.waitStatus(paused.ID, sandbox.StatusPaused); sb.PausedBy != "" {
		t.Errorf("paused outside: by %q", sb.PausedBy)
	}
	// Events that come late (a pause event after rtemu's own pause and
	// resume are done, an unpause event after a pause) change nothing: the
	// container's state now decides. The OOM event after them is the mark
	// that they were handled (events are handled in order).
	oom := e.running(sandbox.CreateParams{})
	late := e.running(sandbox.CreateParams{})
	e.eng.Late(late.ContainerName(), engine.EventPaused)
	e.eng.Late(paused.ContainerName(), engine.EventUnpaused)
	e.eng.OOM(oom.ContainerName())
	testwait.Check(t, 10*time.Second, func() error {
		if e.hasEvent(oom.ID, "oom") {
			return nil
		}
		return fmt.Errorf("no oom event: %v", e.events(oom.ID))
	})
	if got := e.get(oom.ID).Status; got != sandbox.StatusRunning {
		t.Errorf("an OOM kill inside the sandbox made it %s", got)
	}
	if got := e.get(late.ID).Status; got != sandbox.StatusRunning {
		t.Errorf("a late pause event of a running container made it %s", got)
	}
	if got := e.get(paused.ID).Status; got != sandbox.StatusPaused {
		t.Errorf("a late unpause event of a paused container made it %s", got)
	}
	// A broken event stream is reconnected and reconciled: a container
	// removed while nobody watched is found.
	lost := e.running(sandbox.CreateParams{})
	e.eng.SetDown(true)
	e.eng.Vanish(lost.ContainerName())
	e.eng.SetDown(false)
	if sb := e.waitStatus(lost.ID, sandbox.StatusError); !strings.Contains(sb.Error, "container is gone") {
		t.Errorf("found gone by the reconcile after the outage: %q", sb.Error)
	}
}

// The idle timer pauses a sandbox without activity for its idleTimeout, on
// the service's clock; an open use keeps it running.
func TestIdleSweep(t *testing.T) {
	t.Parallel()
	e := started(t)
	idle := 60
	busy := e.running(sandbox.CreateParams{IdleTimeout: &idle})
	end := e.svc.BeginActivity(e.ctx, busy.ID)
	defer end()
	first := e.running(sandbox.CreateParams{IdleTimeout: &idle})
	// The sweep first sees them running now; then a minute passes.
	testwait.Until(t, 10*time.Second, func() bool {
		e.clock.Advance(30 * time.Second)
		return e.get(first.ID).Status == sandbox.StatusPaused
	}, "an idle sandbox was not paused")
	// The feed's entry follows the status.
	testwait.Check(t, 10*time.Second, func() error {
		if e.hasEvent(first.ID, "idle-paused") {
			return nil
		}
		return fmt.Errorf("no idle-paused event: %v", e.events(first.ID))
	})
	sb := e.get(first.ID)
	if sb.PausedBy != sandbox.PausedForIdleness || e.hasEvent(first.ID, "paused") {
		t.Fatalf("idle pause: by %q, feed %v", sb.PausedBy, e.events(first.ID))
	}
	// A later idle sandbox paused means the sweep went over the busy one
	// again, past its timeout.
	second := e.running(sandbox.CreateParams{IdleTimeout: &idle})
	testwait.Until(t, 10*time.Second, func() bool {
		e.clock.Advance(30 * time.Second)
		return e.get(second.ID).Status == sandbox.StatusPaused
	}, "the second idle sandbox was not paused")
	if got := e.get(busy.ID).Status; got != sandbox.StatusRunning {
		t.Fatalf("a sandbox in use was paused for idleness: %s", got)
	}
	// An exec wakes a sandbox paused for idleness.
	if res, err := e.svc.Exec(e.ctx, first.ID, sandbox.ExecParams{Command: "echo awake"}); err != nil || res.Stdout.String() != "awake\n" {
		t.Fatalf("exec in an idle-paused sandbox: %+v, %v", res, err)
	}
	if got := e.get(first.ID).Status; got != sandbox.StatusRunning {
		t.Fatalf("after exec: %s", got)
	}
}

// A fail-async fault answers the create, then fails the sandbox and leaves
// no container.
func TestFailAsyncFault(t *testing.T) {
	t.Parallel()
	e := started(t)
	if _, err := e.svc.ArmFault(sandbox.Fault{Operation: "sandbox.create", Mode: sandbox.FaultFailAsync, Message: "disk on fire", Count: 1}); err != nil {
		t.Fatal(err)
	}
	sb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base"})
	if err != nil || sb.Status != sandbox.StatusCreating {
		t.Fatalf("Create = %+v, %v", sb, err)
	}
	failed := e.waitStatus(sb.ID, sandbox.StatusFailed)
	if !strings.Contains(failed.Error, "disk on fire") || e.has(sb.ContainerName()) {
		t.Fatalf("failed: %q, containers %v", failed.Error, e.eng.Names())
	}
	testwait.Check(t, 10*time.Second, func() error {
		if e.hasEvent(sb.ID, "failed") {
			return nil
		}
		return fmt.Errorf("no failed event: %v", e.events(sb.ID))
	})
	// Count 1: the next create runs.
	e.running(sandbox.CreateParams{})
	// An engine failure while making the container fails the sandbox too.
	e.eng.FailNext("Start", 1, errors.New("OCI runtime create failed"))
	sb, _ = e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base"})
	if failed := e.waitStatus(sb.ID, sandbox.StatusFailed); !strings.Contains(failed.Error, "OCI runtime") || e.has(sb.ContainerName()) {
		t.Fatalf("failed start: %q, containers %v", failed.Error, e.eng.Names())
	}
}

// The warm pool hands out started containers (fitted to the sandbox's
// limits) and fills again.
func TestWarmPoolClaimsAndRefills(t *testing.T) {
	t.Parallel()
	e := started(t, func(c *sandbox.Config) { c.WarmPool = map[string]int{"base": 2} })
	testwait.Check(t, 10*time.Second, func() error {
		if e.svc.WarmPoolReady("base") == 2 {
			return nil
		}
		return fmt.Errorf("pool not filled: %d", e.svc.WarmPoolReady("base"))
	})
	pooled := map[string]bool{}
	for _, n := range e.eng.Names() {
		pooled[n] = true
	}
	creates := e.eng.Calls("Create")
	sb := e.running(sandbox.CreateParams{})
	if !pooled[sb.ContainerName()] {
		t.Fatalf("sandbox %s not from the pool %v", sb.ID, pooled)
	}
	vcpus, mem := 2, "2GB"
	big := e.running(sandbox.CreateParams{VCPUs: &vcpus, Memory: &mem})
	if !pooled[big.ContainerName()] {
		t.Fatalf("sandbox %s not from the pool %v", big.ID, pooled)
	}
	if spec, _ := e.eng.Spec(big.ContainerName()); spec.NanoCPUs != 2e9 || spec.MemoryBytes != 2<<30 {
		t.Fatalf("pooled container's limits not fitted: %d CPU, %d bytes", spec.NanoCPUs, spec.MemoryBytes)
	}
	testwait.Check(t, 10*time.Second, func() error {
		if e.svc.WarmPoolReady("base") == 2 {
			return nil
		}
		return fmt.Errorf("pool not refilled: %d", e.svc.WarmPoolReady("base"))
	})
	if got := e.eng.Calls("Create") - creates; got != 2 {
		t.Fatalf("%d containers made for two pooled sandboxes and the refill, want 2 (the refill's)", got)
	}
	// A reconcile leaves the pool's containers (no record yet) alone.
	if err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.svc.WarmPoolReady("base"); got != 2 || len(e.eng.Names()) != 4 {
		t.Fatalf("after reconcile: pool %d, containers %v", got, e.eng.Names())
	}
}

// A reset while a sandbox is being made: the reset removes what there is,
// and the create finishing afterwards finds its record gone and removes its
// container.
func TestResetDuringInFlightCreate(t *testing.T) {
	t.Parallel()
	e := started(t)
	keep := e.running(sandbox.CreateParams{})
	entered, release := e.eng.Hang("Start")
	sb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base"})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	n, err := e.svc.Reset(e.ctx)
	if err != nil || n != 2 {
		t.Fatalf("Reset = %d, %v", n, err)
	}
	release()
	testwait.Check(t, 10*time.Second, func() error {
		if len(e.eng.Names()) == 0 {
			return nil
		}
		return fmt.Errorf("containers left after a reset: %v", e.eng.Names())
	})
	for _, id := range []string{keep.ID, sb.ID} {
		if _, err := e.svc.Get(e.ctx, id); !errors.Is(err, sandbox.ErrNotFound) {
			t.Fatalf("sandbox %s after a reset: %v", id, err)
		}
	}
}

// A stop of rtemu does not cut short an engine's create under way (the
// engine would finish it anyway, after the caller gave up, and the
// container would be nobody's): Close waits for it and then removes the
// container (nothing outlives rtemu), and the sandbox stays creating for
// the next start to make anew.
func TestCloseLetsAnEngineCreateFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.svc.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.eng.AddHook(func(ctx context.Context, c fake.Call) error {
		if c.Method != "Create" {
			return nil
		}
		once.Do(func() { close(entered) })
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return ctx.Err() // a create whose caller gave up makes nothing here
	})
	sb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base"})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan struct{})
	go func() { e.svc.Close(); close(closed) }()
	<-e.svc.Stopping()
	close(gate)
	<-closed
	if e.eng.Calls("Remove") == 0 {
		t.Fatal("the container made by the create under way at Close was never removed")
	}
	if names := e.eng.Names(); len(names) != 0 {
		t.Fatalf("containers left after Close: %v", names)
	}
	if got := e.get(sb.ID).Status; got != sandbox.StatusCreating {
		t.Fatalf("a sandbox whose create was under way at Close: %s, want creating", got)
	}
}

// While the engine does not answer, creates and deletes are refused as
// unavailable rather than accepted to fail; once it answers they work.
func TestEngineDownRefuses(t *testing.T) {
	t.Parallel()
	e := started(t)
	sb := e.running(sandbox.CreateParams{})
	e.eng.SetDown(true)
	testwait.Until(t, 10*time.Second, func() bool { return !e.svc.EngineUp() }, "the broken event stream went unnoticed")
	if _, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base"}); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("Create with the engine down = %v", err)
	}
	if _, err := e.svc.Delete(e.ctx, sb.ID, false); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("Delete with the engine down = %v", err)
	}
	if got := e.get(sb.ID).Status; got != sandbox.StatusRunning {
		t.Fatalf("a refused delete left %s", got)
	}
	e.eng.SetDown(false)
	testwait.Check(t, 10*time.Second, func() error {
		_, err := e.svc.Delete(e.ctx, sb.ID, false)
		return err
	})
	e.running(sandbox.CreateParams{})
}

// vncReady comes from the service's watcher: true once something answers on
// the desktop's port, false while paused; reading it dials nothing.
func TestVNCReadyFromWatcher(t *testing.T) {
	t.Parallel()
	e := started(t, func(c *sandbox.Config) {
		c.Templates = append(c.Templates, sandbox.Template{Name: sandbox.DesktopTemplate, Image: testImage})
	})
	sb := e.running(sandbox.CreateParams{Template: sandbox.DesktopTemplate})
	if e.svc.VNCReady(sb) {
		t.Fatal("ready before anything answers on the desktop's port")
	}
	if err := e.eng.Serve(sb.ContainerName(), sandbox.VNCPort, func(c net.Conn) { c.Close() }); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return e.svc.VNCReady(e.get(sb.ID)) }, "vncReady never turned true")
	dials := e.eng.Calls("DialPort")
	for range 50 {
		e.svc.VNCReady(e.get(sb.ID))
	}
	if _, _, err := e.svc.Pause(e.ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if e.svc.VNCReady(e.get(sb.ID)) {
		t.Fatal("a paused desktop is ready")
	}
	// 50 reads and a pause in well under a probe interval: at most the
	// watcher's own probe dialled meanwhile.
	if n := e.eng.Calls("DialPort") - dials; n > 2 {
		t.Fatalf("%d dials while reading readiness", n)
	}
	if base := e.running(sandbox.CreateParams{}); e.svc.VNCReady(base) {
		t.Fatal("a sandbox without a desktop is ready")
	}
}

// The service says what can be done as a fact (a Remedy), never as a REST
// route: the SSH gateway shows its messages as they are.
func TestErrorsNameNoRoutes(t *testing.T) {
	t.Parallel()
	e := started(t, func(c *sandbox.Config) { c.StrictLifecycle = true })
	sb := e.running(sandbox.CreateParams{})
	if _, _, err := e.svc.Pause(e.ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Exec(e.ctx, sb.ID, sandbox.ExecParams{Command: "true"})
	var se *sandbox.Error
	if !errors.As(err, &se) || se.Remedy != sandbox.RemedyResume || se.Subject != sb.ID {
		t.Fatalf("exec in a paused sandbox = %#v, want a conflict whose remedy is to resume it", err)
	}
	_, err2 := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base", SSHKeys: []string{"key_nosuchkey"}, SSHKeysSet: true,
		Mounts: []sandbox.Mount{{WorkspaceID: "ws_nosuch", Path: "/mnt/x"}}})
	_, err3 := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base", ProjectID: ptr("00000000-0000-4000-8000-000000000001")})
	for _, err := range []error{err, err2, err3} {
		if err == nil || strings.Contains(err.Error(), "/v1/") || strings.Contains(err.Error(), "POST ") || strings.Contains(err.Error(), "GET ") {
			t.Errorf("a service error names a route: %v", err)
		}
	}
	var fe *sandbox.Error
	if !errors.As(err3, &fe) || len(fe.Details) != 1 || fe.Details[0].Remedy != sandbox.RemedyListProjects {
		t.Errorf("unknown project: %#v", err3)
	}
}

func ptr[T any](v T) *T { return &v }

// An exec on a sandbox caught pausing waits for the pause to end, then
// gets the paused rule (a user's pause: a conflict saying to resume); one
// caught resuming waits and runs. Neither answers while the engine is
// still at it.
func TestExecWaitsThroughPausingAndResuming(t *testing.T) {
	t.Parallel()
	e := started(t)
	sb := e.running(sandbox.CreateParams{})
	for _, step := range []struct {
		method string
		via    sandbox.Status
		do     func() error
		check  func(res sandbox.ExecResult, err error) error
	}{
		{"Pause", sandbox.StatusPausing, func() error { _, _, err := e.svc.Pause(e.ctx, sb.ID); return err },
			func(res sandbox.ExecResult, err error) error {
				var se *sandbox.Error
				if !errors.As(err, &se) || se.Kind != sandbox.KindConflict || !strings.Contains(se.Message, "paused") {
					return fmt.Errorf("exec after the pause: %+v, %v; want the paused conflict", res, err)
				}
				return nil
			}},
		{"Unpause", sandbox.StatusResuming, func() error { _, _, err := e.svc.Resume(e.ctx, sb.ID); return err },
			func(res sandbox.ExecResult, err error) error {
				if err != nil || res.Stdout.String() != "after\n" {
					return fmt.Errorf("exec after the resume: %+v, %v", res, err)
				}
				return nil
			}},
	} {
		entered, release := e.eng.Hang(step.method)
		done := make(chan error, 1)
		go func() { done <- step.do() }()
		<-entered
		if got := e.get(sb.ID).Status; got != step.via {
			t.Fatalf("while the engine is at %s: %s, want %s", step.method, got, step.via)
		}
		type answer struct {
			res sandbox.ExecResult
			err error
		}
		execDone := make(chan answer, 1)
		go func() {
			res, err := e.svc.Exec(e.ctx, sb.ID, sandbox.ExecParams{Command: "echo after", Timeout: 20 * time.Second})
			execDone <- answer{res, err}
		}()
		// The exec must still be waiting once the service has seen it
		// (it reads the sandbox, then waits on its changes): it can only
		// answer after the engine call ends.
		select {
		case a := <-execDone:
			t.Fatalf("exec answered while %s: %+v, %v", step.via, a.res, a.err)
		case <-time.After(200 * time.Millisecond):
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", step.method, err)
		}
		a := <-execDone
		if err := step.check(a.res, a.err); err != nil {
			t.Error(err)
		}
		a.res.Close()
	}
}

// TestHelpersOfADeadRtemu: a helper container the engine makes after the
// start-up reconcile looked, for a killed rtemu of the same instance, is
// removed by the sweep that follows the start; this process's own helpers
// are left to it, by the sweep and by a reconcile.
func TestHelpersOfADeadRtemu(t *testing.T) {
	t.Parallel()
	e := started(t)
	helper := func(name, process string) {
		t.Helper()
		labels := map[string]string{sandbox.LabelInstance: e.svc.Instance(), sandbox.LabelProcess: process}
		if err := e.eng.Create(e.ctx, fakeSpec(name, labels)); err != nil {
			t.Fatal(err)
		}
	}
	helper("late-helper-of-the-dead", "killed0000ab")
	helper("own-helper", e.svc.Process())
	testwait.Until(t, 20*time.Second, func() bool { return !e.has("late-helper-of-the-dead") },
		"the dead rtemu's helper is still there: %v", e.eng.Names())
	if err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if !e.has("own-helper") {
		t.Fatalf("this process's helper was removed: %v", e.eng.Names())
	}
}
