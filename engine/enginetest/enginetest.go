// Package enginetest is the conformance suite of the engine contract
// (engine.Engine): one set of cases every engine passes — the Docker
// engine (engine/docker) and the in-memory fake (engine/fake) — so that
// what the service's tests prove on the fake holds on the real engine. A
// behaviour an engine cannot model is a case it skips, saying why
// (Harness.Unmodelled), never a missing one.
package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// Harness is what the suite needs of one engine.
type Harness struct {
	// New returns an engine for one case; its cleanup is registered on t.
	New func(t *testing.T) engine.Engine
	// Image is an image the engine has, with a POSIX shell, echo, cat,
	// sleep and exit.
	Image string
	// Serve starts, inside the running container name, a server on port
	// that writes back what it reads, and returns once it listens (the
	// suite still retries a failed echo for a while).
	Serve func(t *testing.T, e engine.Engine, name string, port int)
	// Unmodelled names the cases (by their t.Run name) this engine cannot
	// model, each with the reason; they are skipped with it.
	Unmodelled map[string]string
	// Timeout bounds each wait of the suite (default 30 s; a loaded
	// machine's Docker needs it).
	Timeout time.Duration
}

// Run runs every case of the contract against the harness's engine.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	cases := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"Ping", testPing},
		{"CreateStartInspectList", testCreateStartInspectList},
		{"CreateNameInUse", testCreateNameInUse},
		{"CreateMissingImage", testCreateMissingImage},
		{"Missing", testMissing},
		{"PauseUnpause", testPauseUnpause},
		{"Remove", testRemove},
		{"Events", testEvents},
		{"WatchEndsWithContext", testWatchEnds},
		{"ExecExitCodesAndStreams", testExecStreams},
		{"ExecEnv", testExecEnv},
		{"ExecStdin", testExecStdin},
		{"ExecCancel", testExecCancel},
		{"DialPort", testDial},
		{"DialPortRefused", testDialRefused},
		{"Stats", testStats},
		{"UpdateLimits", testUpdateLimits},
		{"SharesFolder", testSharesFolder},
		{"Disk", testDisk},
		{"DiskEnforced", testDiskEnforced},
		{"Snapshot", testSnapshot},
		{"SnapshotFiles", testSnapshotFiles},
		{"SnapshotWithoutBase", testSnapshotWithout},
		{"SnapshotUnsupported", testSnapshotUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if why, ok := h.Unmodelled[c.name]; ok {
				t.Skipf("this engine cannot model it: %s", why)
			}
			t.Parallel()
			c.run(t, h)
		})
	}
}

// fixture is one case's engine and its containers' names and labels.
type fixture struct {
	t      *testing.T
	h      Harness
	e      engine.Engine
	ctx    context.Context
	tag    string
	labels map[string]string
}

func newFixture(t *testing.T, h Harness) *fixture {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	tag := hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 4*h.Timeout)
	t.Cleanup(cancel)
	return &fixture{t: t, h: h, e: h.New(t), ctx: ctx, tag: tag, labels: map[string]string{"rtemu.enginetest": tag}}
}

func (f *fixture) name(n string) string { return "rtemu-enginetest-" + f.tag + "-" + n }

func (f *fixture) spec(n string) engine.ContainerSpec {
	return engine.ContainerSpec{Name: f.name(n), Image: f.h.Image, Hostname: "enginetest", Labels: f.labels,
		Env: []string{"FROM_SPEC=yes"}, NanoCPUs: 1e9, MemoryBytes: 128 << 20, PidsLimit: 100, WorkingDir: "/workspace"}
}

// create makes a container and removes it when the case ends.
func (f *fixture) create(n string) string {
	f.t.Helper()
	return f.createSpec(f.spec(n))
}

// createSpec makes a container of spec and removes it when the case ends.
func (f *fixture) createSpec(spec engine.ContainerSpec) string {
	f.t.Helper()
	if err := f.e.Create(f.ctx, spec); err != nil {
		f.t.Fatalf("Create: %v", err)
	}
	f.t.Cleanup(func() {
		if err := f.e.Remove(context.Background(), spec.Name); err != nil {
			f.t.Errorf("Remove at cleanup: %v", err)
		}
	})
	return spec.Name
}

// started makes and starts a container.
func (f *fixture) started(n string) string {
	f.t.Helper()
	name := f.create(n)
	if err := f.e.Start(f.ctx, name); err != nil {
		f.t.Fatalf("Start: %v", err)
	}
	return name
}

func (f *fixture) status(name string) engine.Status {
	f.t.Helper()
	st, err := f.e.Inspect(f.ctx, name)
	if err != nil {
		f.t.Fatalf("Inspect: %v", err)
	}
	return st.Status
}

func (f *fixture) sh(name, script string, stdin io.Reader) (string, string, int, error) {
	var out, errb bytes.Buffer
	code, err := f.e.Exec(f.ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdin: stdin, Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code, err
}

func testPing(t *testing.T, h Harness) {
	f := newFixture(t, h)
	info, err := f.e.Ping(f.ctx)
	if err != nil || info.CPUs <= 0 {
		t.Fatalf("Ping = %+v, %v; want the engine's CPUs", info, err)
	}
	if ok, err := f.e.ImagePresent(f.ctx, h.Image); err != nil || !ok {
		t.Fatalf("ImagePresent(%s) = %v, %v", h.Image, ok, err)
	}
	if ok, err := f.e.ImagePresent(f.ctx, "rtemu-enginetest/absent:"+f.tag); err != nil || ok {
		t.Fatalf("ImagePresent(absent) = %v, %v", ok, err)
	}
}

func testCreateStartInspectList(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.create("c")
	st, err := f.e.Inspect(f.ctx, name)
	if err != nil || st.Status != engine.Created || st.Labels["rtemu.enginetest"] != f.tag {
		t.Fatalf("after Create: %+v, %v; want created with the labels", st, err)
	}
	if err := f.e.Start(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	st, err = f.e.Inspect(f.ctx, name)
	if err != nil || st.Status != engine.Running || st.IP == "" {
		t.Fatalf("after Start: %+v, %v; want running with an address", st, err)
	}
	cs, err := f.e.List(f.ctx, f.labels)
	if err != nil || len(cs) != 1 || cs[0].Name != name || cs[0].Status != engine.Running || cs[0].Labels["rtemu.enginetest"] != f.tag {
		t.Fatalf("List = %+v, %v; want just %s, running", cs, err, name)
	}
	if cs, err := f.e.List(f.ctx, map[string]string{"rtemu.enginetest": "other-" + f.tag}); err != nil || len(cs) != 0 {
		t.Fatalf("List by another label = %+v, %v; want none", cs, err)
	}
	out, _, code, err := f.sh(name, "pwd; echo $FROM_SPEC", nil)
	if err != nil || code != 0 || out != "/workspace\nyes\n" {
		t.Fatalf("the spec's env and working dir: out %q code %d err %v", out, code, err)
	}
}

func testCreateNameInUse(t *testing.T, h Harness) {
	f := newFixture(t, h)
	f.create("dup")
	if err := f.e.Create(f.ctx, f.spec("dup")); !errors.Is(err, engine.ErrNameInUse) {
		t.Fatalf("second Create = %v, want ErrNameInUse", err)
	}
}

func testCreateMissingImage(t *testing.T, h Harness) {
	f := newFixture(t, h)
	spec := f.spec("noimage")
	spec.Image = "rtemu-enginetest/absent:" + f.tag
	err := f.e.Create(f.ctx, spec)
	if err == nil {
		_ = f.e.Remove(context.Background(), spec.Name)
	}
	if !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Create of an absent image = %v, want ErrNotFound", err)
	}
}

func testMissing(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.name("missing")
	if _, err := f.e.Inspect(f.ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Inspect = %v, want ErrNotFound", err)
	}
	if err := f.e.Remove(f.ctx, name); err != nil {
		t.Errorf("Remove of a missing container = %v, want nil", err)
	}
	if err := f.e.Start(f.ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Start = %v, want ErrNotFound", err)
	}
	if err := f.e.Pause(f.ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Pause = %v, want ErrNotFound", err)
	}
	if _, err := f.e.Stats(f.ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Stats = %v, want ErrNotFound", err)
	}
	if _, _, _, err := f.sh(name, "true", nil); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Exec = %v, want ErrNotFound", err)
	}
}

func testPauseUnpause(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("p")
	if err := f.e.Pause(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	if s := f.status(name); s != engine.Paused {
		t.Fatalf("after Pause: %s", s)
	}
	if cs, err := f.e.List(f.ctx, f.labels); err != nil || len(cs) != 1 || cs[0].Status != engine.Paused {
		t.Fatalf("List after Pause = %+v, %v", cs, err)
	}
	if _, _, _, err := f.sh(name, "true", nil); !errors.Is(err, engine.ErrNotRunning) {
		t.Fatalf("Exec in a paused container = %v, want ErrNotRunning", err)
	}
	if _, err := f.e.DialPort(f.ctx, name, 8090); !errors.Is(err, engine.ErrNotRunning) {
		t.Fatalf("DialPort to a paused container = %v, want ErrNotRunning", err)
	}
	if err := f.e.Pause(f.ctx, name); err == nil {
		t.Fatal("Pause of a paused container: no error")
	}
	if err := f.e.Unpause(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	if s := f.status(name); s != engine.Running {
		t.Fatalf("after Unpause: %s", s)
	}
	if out, _, code, err := f.sh(name, "echo thawed", nil); err != nil || code != 0 || out != "thawed\n" {
		t.Fatalf("Exec after Unpause: %q %d %v", out, code, err)
	}
	if err := f.e.Unpause(f.ctx, name); err == nil {
		t.Fatal("Unpause of a running container: no error")
	}
}

func testRemove(t *testing.T, h Harness) {
	f := newFixture(t, h)
	for _, n := range []string{"running", "paused", "created"} {
		var name string
		if n == "created" {
			name = f.create(n)
		} else {
			name = f.started(n)
		}
		if n == "paused" {
			if err := f.e.Pause(f.ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.e.Remove(f.ctx, name); err != nil {
			t.Fatalf("Remove of a %s container: %v", n, err)
		}
		if _, err := f.e.Inspect(f.ctx, name); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("Inspect after Remove of a %s container = %v, want ErrNotFound", n, err)
		}
	}
	if cs, err := f.e.List(f.ctx, f.labels); err != nil || len(cs) != 0 {
		t.Fatalf("List after Remove = %+v, %v", cs, err)
	}
}

// next returns the next event of name, skipping others the engine may
// send (Docker's own ordering of start, kill, die is kept).
func (f *fixture) next(evs <-chan engine.Event, name string, want engine.EventKind) engine.Event {
	f.t.Helper()
	timeout := time.After(f.h.Timeout)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				f.t.Fatalf("event stream closed waiting for %s of %s", want, name)
			}
			if ev.Name != name {
				f.t.Fatalf("event %+v of another container (the watch's labels are %v)", ev, f.labels)
			}
			if ev.Kind == want {
				if ev.Labels["rtemu.enginetest"] != f.tag {
					f.t.Fatalf("event %+v without the container's labels", ev)
				}
				return ev
			}
		case <-timeout:
			f.t.Fatalf("no %s event of %s within %v", want, name, f.h.Timeout)
		}
	}
}

func testEvents(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	evs, _ := f.e.Watch(ctx, f.labels)
	// A container without the labels: none of its events may come.
	other := f.spec("unwatched")
	other.Labels = map[string]string{"rtemu.enginetest": "other-" + f.tag}
	if err := f.e.Create(f.ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.e.Remove(context.Background(), other.Name) })
	if err := f.e.Start(f.ctx, other.Name); err != nil {
		t.Fatal(err)
	}
	name := f.started("ev")
	f.next(evs, name, engine.EventStarted)
	if err := f.e.Pause(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	f.next(evs, name, engine.EventPaused)
	if err := f.e.Unpause(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	f.next(evs, name, engine.EventUnpaused)
	if err := f.e.Remove(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	f.next(evs, name, engine.EventDied)
	f.next(evs, name, engine.EventRemoved)
}

func testWatchEnds(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ctx, cancel := context.WithCancel(f.ctx)
	evs, errs := f.e.Watch(ctx, f.labels)
	cancel()
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("the watch ended with a nil error")
		}
	case <-time.After(h.Timeout):
		t.Fatal("the watch did not end with its context")
	}
	for range evs { // the event channel closes after the error
	}
}

func testExecStreams(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("x")
	cases := []struct {
		script, out, errOut string
		code                int
	}{
		{"echo out; echo err >&2", "out\n", "err\n", 0},
		{"exit 3", "", "", 3},
		{"false", "", "", 1},
		{"echo a && exit 7", "a\n", "", 7},
	}
	for _, c := range cases {
		out, errOut, code, err := f.sh(name, c.script, nil)
		if err != nil || out != c.out || errOut != c.errOut || code != c.code {
			t.Errorf("%q: out %q err %q code %d (%v); want %q %q %d", c.script, out, errOut, code, err, c.out, c.errOut, c.code)
		}
	}
	// The argv is the command's, not a shell line.
	var out bytes.Buffer
	code, err := f.e.Exec(f.ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", `echo "$1"`, "sh", "two words"}, Stdout: &out})
	if err != nil || code != 0 || out.String() != "two words\n" {
		t.Errorf("argv: %q %d %v", out.String(), code, err)
	}
}

func testExecEnv(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("env")
	var out bytes.Buffer
	code, err := f.e.Exec(f.ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", "echo $GIVEN; echo $FROM_SPEC"},
		Env: []string{"GIVEN=by-exec"}, Stdout: &out})
	if err != nil || code != 0 || out.String() != "by-exec\nyes\n" {
		t.Fatalf("env: %q %d %v", out.String(), code, err)
	}
}

func testExecStdin(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("in")
	out, _, code, err := f.sh(name, "cat", strings.NewReader("line one\nline two\n"))
	if err != nil || code != 0 || out != "line one\nline two\n" {
		t.Fatalf("stdin: %q %d %v", out, code, err)
	}
}

func testExecCancel(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("cancel")
	ctx, cancel := context.WithTimeout(f.ctx, time.Second)
	defer cancel()
	start := time.Now()
	_, err := f.e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", "sleep 300"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec past its context = %v, want the context's error", err)
	}
	if d := time.Since(start); d > h.Timeout {
		t.Fatalf("the cancelled command returned after %v", d)
	}
	// The container goes on.
	if out, _, code, err := f.sh(name, "echo alive", nil); err != nil || code != 0 || out != "alive\n" {
		t.Fatalf("after a cancel: %q %d %v", out, code, err)
	}
}

func testDial(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("dial")
	h.Serve(t, f.e, name, 8090)
	// A refused dial is tried again until the deadline (the server may not
	// listen yet). A connection made must echo the one line written to it:
	// a relay that loses or holds back bytes fails here.
	deadline := time.Now().Add(h.Timeout)
	for {
		conn, err := f.e.DialPort(f.ctx, name, 8090)
		if errors.Is(err, syscall.ECONNREFUSED) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("DialPort: %v", err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(h.Timeout))
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo through DialPort: %q %v", line, err)
		}
		return
	}
}

func testDialRefused(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("refused")
	if _, err := f.e.DialPort(f.ctx, name, 8099); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("DialPort to a port nothing listens on = %v, want ECONNREFUSED", err)
	}
}

func testStats(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("stats")
	st, err := f.e.Stats(f.ctx, name)
	if err != nil || st.StartedAt.IsZero() || st.MemoryLimitBytes != 128<<20 || st.CPUCores < 0 || st.MemoryUsedBytes < 0 {
		t.Fatalf("Stats = %+v, %v; want the start time and the 128 MiB limit", st, err)
	}
}

func testUpdateLimits(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("limits")
	if err := f.e.UpdateLimits(f.ctx, name, 5e8, 192<<20); err != nil {
		t.Fatal(err)
	}
	st, err := f.e.Stats(f.ctx, name)
	if err != nil || st.MemoryLimitBytes != 192<<20 {
		t.Fatalf("Stats after UpdateLimits = %+v, %v; want a 192 MiB limit", st, err)
	}
	if err := f.e.UpdateLimits(f.ctx, f.name("missing"), 5e8, 192<<20); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("UpdateLimits of a missing container = %v, want ErrNotFound", err)
	}
}

func testSharesFolder(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ok, err := f.e.SharesFolder(f.ctx, t.TempDir(), h.Image, f.labels)
	if err != nil {
		t.Fatalf("SharesFolder: %v", err)
	}
	// The suite runs on the engine's own host: a folder of it is seen.
	if !ok {
		t.Fatal("SharesFolder of a local folder = false")
	}
}

// testDisk: the engine says whether it holds containers to a disk size,
// and why not when it does not, leaving no container behind from asking;
// it measures a container's files, and a missing one is ErrNotFound.
func testDisk(t *testing.T, h Harness) {
	f := newFixture(t, h)
	l, err := f.e.DiskLimits(f.ctx, h.Image, f.labels)
	if err != nil {
		t.Fatalf("DiskLimits: %v", err)
	}
	if l.StorageDriver == "" || (!l.Enforced && l.Why == "") {
		t.Errorf("DiskLimits = %+v: want the storage named, and why when not enforced", l)
	}
	if cs, err := f.e.List(f.ctx, f.labels); err != nil || len(cs) != 0 {
		t.Errorf("containers left from asking: %+v, %v", cs, err)
	}
	name := f.started("d")
	if n, err := f.e.DiskUsed(f.ctx, name); err != nil || n <= 0 {
		t.Errorf("DiskUsed = %d, %v", n, err)
	}
	if _, err := f.e.DiskUsed(f.ctx, name+"-none"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("DiskUsed of no container = %v, want ErrNotFound", err)
	}
}

// testDiskEnforced: where the engine says it holds containers to a disk
// size, a container made with one writes within it and fails to write past
// it (a disk size the engine drops would pass). An engine that enforces
// none skips, saying why.
func testDiskEnforced(t *testing.T, h Harness) {
	f := newFixture(t, h)
	l, err := f.e.DiskLimits(f.ctx, h.Image, f.labels)
	if err != nil {
		t.Fatalf("DiskLimits: %v", err)
	}
	if !l.Enforced {
		t.Skipf("the engine does not enforce disk sizes here: %s", l.Why)
	}
	spec := f.spec("quota")
	spec.DiskBytes = 64 << 20
	name := f.createSpec(spec)
	if err := f.e.Start(f.ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, stderr, code, err := f.sh(name, "dd if=/dev/zero of=/within bs=1M count=8", nil); err != nil || code != 0 {
		t.Fatalf("writing 8 MiB in a 64 MiB disk: code %d, %v, %q", code, err, stderr)
	}
	if _, _, code, err := f.sh(name, "dd if=/dev/zero of=/past bs=1M count=128", nil); err != nil || code == 0 {
		t.Fatalf("writing 128 MiB in a 64 MiB disk: code %d, %v; want a failure (the disk size was not applied)", code, err)
	}
}

// snapshotRef is an image name of the case, removed when it ends.
func (f *fixture) snapshotRef(n string) string {
	ref := "rtemu-enginetest-" + f.tag + "-" + n + ":snapshot"
	f.t.Cleanup(func() {
		if err := f.e.RemoveImage(context.Background(), ref); err != nil {
			f.t.Errorf("RemoveImage at cleanup: %v", err)
		}
	})
	return ref
}

// A container's snapshot is an image: saved to an archive, removed, loaded
// back under the same name, and a container made from it runs. A paused
// container stays paused through its snapshot. An archive that is not one
// loads nothing.
func testSnapshot(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("s")
	src, err := f.e.Inspect(f.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ref := f.snapshotRef("s")
	if err := f.e.Pause(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Snapshot(f.ctx, name, ref, map[string]string{"rtemu.enginetest.snapshot": "yes"}); err != nil {
		t.Fatalf("Snapshot of a paused container: %v", err)
	}
	if s := f.status(name); s != engine.Paused {
		t.Fatalf("after Snapshot of a paused container: %s", s)
	}
	if ok, err := f.e.ImagePresent(f.ctx, ref); err != nil || !ok {
		t.Fatalf("ImagePresent(snapshot) = %v, %v", ok, err)
	}
	var archive bytes.Buffer
	if err := f.e.SaveImages(f.ctx, []string{ref}, engine.SaveOptions{}, &archive); err != nil {
		t.Fatalf("SaveImages: %v", err)
	}
	if err := f.e.RemoveImage(f.ctx, ref); err != nil {
		t.Fatalf("RemoveImage: %v", err)
	}
	if ok, err := f.e.ImagePresent(f.ctx, ref); err != nil || ok {
		t.Fatalf("ImagePresent after RemoveImage = %v, %v", ok, err)
	}
	if err := f.e.RemoveImage(f.ctx, ref); err != nil {
		t.Fatalf("RemoveImage of a missing image: %v", err)
	}
	if err := f.e.LoadImages(f.ctx, strings.NewReader("this is not an image archive")); err == nil {
		t.Fatal("LoadImages of garbage: no error")
	}
	if err := f.e.LoadImages(f.ctx, &archive); err != nil {
		t.Fatalf("LoadImages: %v", err)
	}
	if ok, err := f.e.ImagePresent(f.ctx, ref); err != nil || !ok {
		t.Fatalf("ImagePresent after LoadImages = %v, %v", ok, err)
	}
	spec := f.spec("from-snapshot")
	spec.Image = ref
	made := f.createSpec(spec)
	if err := f.e.Start(f.ctx, made); err != nil {
		t.Fatalf("Start a container of the snapshot: %v", err)
	}
	st, err := f.e.Inspect(f.ctx, made)
	if err != nil || st.Status != engine.Running {
		t.Fatalf("container of the snapshot: %+v, %v", st, err)
	}
	// Its labels are its own: none of the snapshotted container's came
	// with the image.
	for k, v := range st.Labels {
		if v != "" && v == src.Labels[k] && spec.Labels[k] != v {
			t.Errorf("label %s=%q came with the snapshot", k, v)
		}
	}
}

// What a container wrote is in its snapshot, through a save and a load; a
// bind mount is not.
func testSnapshotFiles(t *testing.T, h Harness) {
	f := newFixture(t, h)
	name := f.started("f")
	if out, errs, code, err := f.sh(name, "echo kept > /snapshot.txt && mkdir -p /workspace/d && echo deep > /workspace/d/f", nil); err != nil || code != 0 {
		t.Fatalf("write: %q %q %d %v", out, errs, code, err)
	}
	ref := f.snapshotRef("f")
	if err := f.e.Snapshot(f.ctx, name, ref, nil); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if s := f.status(name); s != engine.Running {
		t.Fatalf("after Snapshot of a running container: %s", s)
	}
	var archive bytes.Buffer
	if err := f.e.SaveImages(f.ctx, []string{ref}, engine.SaveOptions{}, &archive); err != nil {
		t.Fatal(err)
	}
	if err := f.e.RemoveImage(f.ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := f.e.LoadImages(f.ctx, &archive); err != nil {
		t.Fatal(err)
	}
	spec := f.spec("f2")
	spec.Image = ref
	made := f.createSpec(spec)
	if err := f.e.Start(f.ctx, made); err != nil {
		t.Fatal(err)
	}
	if out, errs, code, err := f.sh(made, "cat /snapshot.txt /workspace/d/f", nil); err != nil || code != 0 || out != "kept\ndeep\n" {
		t.Fatalf("files of the snapshot: %q %q %d %v", out, errs, code, err)
	}
}

// An archive saved without the image a container was made from
// (SaveOptions.Without) is no bigger than one with it, and loads back where
// that image is: a container of the snapshot has the files written.
func testSnapshotWithout(t *testing.T, h Harness) {
	f := newFixture(t, h)
	if !f.e.Capabilities().Snapshot {
		t.Skip("the engine cannot snapshot")
	}
	name := f.started("w")
	if _, errs, code, err := f.sh(name, "echo mine > /without.txt", nil); err != nil || code != 0 {
		t.Fatalf("write: %q %d %v", errs, code, err)
	}
	ref := f.snapshotRef("w")
	if err := f.e.Snapshot(f.ctx, name, ref, nil); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var full, thin bytes.Buffer
	if err := f.e.SaveImages(f.ctx, []string{ref}, engine.SaveOptions{}, &full); err != nil {
		t.Fatal(err)
	}
	if err := f.e.SaveImages(f.ctx, []string{ref}, engine.SaveOptions{Without: []string{h.Image}, Dir: t.TempDir()}, &thin); err != nil {
		t.Fatalf("SaveImages without the base: %v", err)
	}
	if thin.Len() > full.Len() {
		t.Errorf("the archive without the base is %d bytes, with it %d", thin.Len(), full.Len())
	}
	t.Logf("archive: %d bytes with the base image, %d without", full.Len(), thin.Len())
	if err := f.e.RemoveImage(f.ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := f.e.LoadImages(f.ctx, &thin); err != nil {
		t.Fatalf("LoadImages of the archive without the base: %v", err)
	}
	spec := f.spec("w2")
	spec.Image = ref
	made := f.createSpec(spec)
	if err := f.e.Start(f.ctx, made); err != nil {
		t.Fatal(err)
	}
	if out, errs, code, err := f.sh(made, "cat /without.txt", nil); err != nil || code != 0 || out != "mine\n" {
		t.Fatalf("files of the snapshot loaded without its base: %q %q %d %v", out, errs, code, err)
	}
}

// An engine without Snapshot says so, with ErrUnsupported, on every call.
func testSnapshotUnsupported(t *testing.T, h Harness) {
	f := newFixture(t, h)
	if f.e.Capabilities().Snapshot {
		t.Skip("the engine has Snapshot (the Snapshot cases apply)")
	}
	calls := map[string]error{
		"Snapshot":    f.e.Snapshot(f.ctx, "any", "rtemu-enginetest-none:x", nil),
		"SaveImages":  f.e.SaveImages(f.ctx, []string{"rtemu-enginetest-none:x"}, engine.SaveOptions{}, io.Discard),
		"LoadImages":  f.e.LoadImages(f.ctx, strings.NewReader("")),
		"RemoveImage": f.e.RemoveImage(f.ctx, "rtemu-enginetest-none:x"),
	}
	for call, err := range calls {
		if !errors.Is(err, engine.ErrUnsupported) {
			t.Errorf("%s = %v, want ErrUnsupported", call, err)
		}
	}
}
