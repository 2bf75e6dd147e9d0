package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
)

// newContainer starts a container of the test image on a new driver and
// removes both at the end of the test.
func newContainer(t *testing.T, options ...docker.Option) (*docker.Driver, string) {
	t.Helper()
	d := newDriver(t, options...)
	return d, newContainerOf(t, d)
}

// newDriver makes a driver (skipping the test without an engine) and
// closes it at the end of the test.
func newDriver(t *testing.T, options ...docker.Option) *docker.Driver {
	t.Helper()
	emulatortest.SkipIfNoDocker(t)
	d, err := docker.New(options...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testImage is the offline test image, made if need be.
func testImage(t *testing.T) string {
	t.Helper()
	img, err := emulatortest.TestImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// newContainerOf starts a container of the test image on d and removes it
// at the end of the test.
func newContainerOf(t *testing.T, d *docker.Driver) string {
	t.Helper()
	return newContainerFrom(t, d, testImage(t))
}

// newContainerFrom starts a container of img on d and removes it at the
// end of the test.
func newContainerFrom(t *testing.T, d *docker.Driver, img string) string {
	t.Helper()
	name := createdContainer(t, d, img)
	if err := d.Start(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

// createdContainer creates a container of img on d, not started, and
// removes it at the end of the test.
func createdContainer(t *testing.T, d *docker.Driver, img string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "rtemu-drivertest-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := d.Remove(context.Background(), name); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	spec := docker.ContainerSpec{
		Name: name, Image: img, Labels: map[string]string{"rtemu.drivertest": "1"},
		Env: []string{"FROM_SPEC=yes"}, NanoCPUs: 1e9, MemoryBytes: 256 << 20, PidsLimit: 100, WorkingDir: "/workspace",
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	return name
}

// linkedOptions make a driver that links its containers' agents.
var linkedOptions = []docker.Option{docker.WithLinkDir(filepath.Join(os.TempDir(), "rtemu-drivertest-links"))}

// execPaths are the three ways a command runs: through the container's
// exec agent linked to rtemu by a socket, through agents on Docker exec
// streams (Docker Desktop's way), and by Docker exec. Every exec test runs
// on each, in its own container, and checks that its path is the one taken.
var execPaths = []struct {
	name    string
	options []docker.Option
	via     string // what viaAgent says
}{
	{"linked", linkedOptions, "link"},
	{"agent", nil, "stream"},
	{"docker-exec", []docker.Option{docker.WithoutExecAgent()}, "docker exec"},
}

func forEachExecPath(t *testing.T, test func(t *testing.T, d *docker.Driver, name string)) {
	t.Helper()
	for _, p := range execPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			d, name := newContainer(t, p.options...)
			if got := viaAgent(t, d, name); got != p.via {
				t.Fatalf("command ran by %s, want %s", got, p.via)
			}
			test(t, d, name)
		})
	}
}

// viaAgent tells which way a command ran: its parent is the link's hub
// ("link"), an agent on a Docker exec stream ("stream"), or outside the
// container ("docker exec": PPID 0).
func viaAgent(t *testing.T, d *docker.Driver, name string) string {
	t.Helper()
	out, _, _, err := run(t, d, context.Background(), name, `tr '\0' ' ' </proc/$PPID/cmdline 2>/dev/null; echo; tr '\0' ' ' </proc/$PPID/environ 2>/dev/null`)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !strings.Contains(out, "/rtemu-agent"):
		return "docker exec"
	case strings.Contains(out, "RTEMU_AGENT_SERVE=link"):
		return "link"
	}
	return "stream"
}

func run(t *testing.T, d *docker.Driver, ctx context.Context, name, cmd string) (string, string, int, error) {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := d.Exec(ctx, name, docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", cmd}, Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code, err
}

func TestCreateAppliesSpec(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	st, err := d.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.NanoCPUs != 1e9 || st.MemoryBytes != 256<<20 || st.PidsLimit != 100 || st.Privileged || !st.Init {
		t.Fatalf("state = %+v", st)
	}
	if st.Labels["rtemu.drivertest"] != "1" {
		t.Fatalf("labels = %v", st.Labels)
	}
	out, _, code, err := run(t, d, context.Background(), name, `pwd; echo $FROM_SPEC; ls -A /workspace | wc -l`)
	if err != nil || code != 0 || out != "/workspace\nyes\n0\n" {
		t.Fatalf("out=%q code=%d err=%v", out, code, err)
	}
	cs, err := d.List(context.Background(), map[string]string{"rtemu.drivertest": "1"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs {
		found = found || c.Name == name
	}
	if !found {
		t.Fatalf("List did not find %s in %v", name, cs)
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		tests := []struct {
			name, cmd      string
			stdout, stderr string
			code           int
		}{
			{"ok", "echo hi", "hi\n", "", 0},
			{"streams apart", "echo out; echo err >&2", "out\n", "err\n", 0},
			{"exit 3", "exit 3", "", "", 3},
			{"not found", "no-such-command-here", "", "", 127},
			{"killed", "kill -9 $$", "", "", 137},
			{"own process group killed", "sleep 30 & kill -9 0; sleep 5", "", "", 137},
			// Through the agent this kills the agent; by Docker exec
			// ($PPID is 0) the shell's process group. Either way: 137.
			{"parent killed", "kill -9 $PPID; sleep 5", "", "", 137},
			{"after the parent was killed", "echo still", "still\n", "", 0},
			{"large output", "yes x | head -c 3000000", strings.Repeat("x\n", 1500000), "", 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, errOut, code, err := run(t, d, context.Background(), name, tt.cmd)
				if err != nil {
					t.Fatal(err)
				}
				if code != tt.code || out != tt.stdout || (tt.stderr != "" && errOut != tt.stderr) {
					t.Fatalf("code=%d stdout=%.40q stderr=%q; want %d %.40q %q", code, out, errOut, tt.code, tt.stdout, tt.stderr)
				}
			})
		}
	})
}

func TestExecStdin(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		var out bytes.Buffer
		in := strings.Repeat("line\n", 10000)
		code, err := d.Exec(context.Background(), name, docker.ExecSpec{
			Cmd: []string{"/bin/sh", "-c", "wc -l"}, Stdin: strings.NewReader(in), Stdout: &out,
		})
		if err != nil || code != 0 || strings.TrimSpace(out.String()) != "10000" {
			t.Fatalf("out=%q code=%d err=%v", out.String(), code, err)
		}
	})
}

func TestExecCancelKillsProcessTree(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		out, _, _, err := run(t, d, ctx, name, `echo started; (sleep 300; echo child) & sleep 301`)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if out != "started\n" {
			t.Fatalf("output so far = %q", out)
		}
		t.Logf("cancel took %v", time.Since(start))
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("cancel took %v", el)
		}
		ps, _, _, err := run(t, d, context.Background(), name, `ps -o args | grep -c '^sleep 30[01]'`)
		if err != nil || strings.TrimSpace(ps) != "0" {
			t.Fatalf("processes left: %q (err %v)", ps, err)
		}
	})
}

func TestExecBackgroundProcessDoesNotHold(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		start := time.Now()
		_, _, code, err := run(t, d, context.Background(), name, `sleep 60 & echo started`)
		if err != nil || code != 0 {
			t.Fatalf("code=%d err=%v", code, err)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("exec with a background child took %v", el)
		}
		ps, _, _, _ := run(t, d, context.Background(), name, `ps -o args | grep -c '^sleep 60'`)
		if strings.TrimSpace(ps) != "1" {
			t.Fatalf("background process should still run; ps count %q", ps)
		}
	})
}

// The early close for background children must never cut output that is
// still flowing.
func TestExecBackgroundChildKeepsAllOutput(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		for i := 0; i < 3; i++ {
			start := time.Now()
			out, _, code, err := run(t, d, context.Background(), name, `sleep 20 & head -c 4000000 /dev/zero | tr '\0' x`)
			if err != nil || code != 0 || len(out) != 4000000 {
				t.Fatalf("round %d: %d bytes, code %d, err %v", i, len(out), code, err)
			}
			if el := time.Since(start); el > 8*time.Second {
				t.Errorf("round %d took %v", i, el)
			}
		}
	})
}

func TestPausedContainer(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		ctx := context.Background()
		if err := d.Pause(ctx, name); err != nil {
			t.Fatal(err)
		}
		st, _ := d.Inspect(ctx, name)
		if !st.Paused {
			t.Fatalf("not paused: %+v", st)
		}
		if _, _, _, err := run(t, d, ctx, name, "true"); !errors.Is(err, docker.ErrNotRunning) {
			t.Fatalf("exec in paused container: err = %v, want ErrNotRunning", err)
		}
		// Remove must thaw it first; the cleanup removes it while paused.
	})
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	d, err := docker.New()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Inspect(context.Background(), "rtemu-no-such-container"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if err := d.Remove(context.Background(), "rtemu-no-such-container"); err != nil {
		t.Fatalf("removing a missing container: %v", err)
	}
	ok, err := d.ImagePresent(context.Background(), "rtemu-test/none:missing")
	if err != nil || ok {
		t.Fatalf("ImagePresent = %v, %v", ok, err)
	}
}

// A second container of the same name is refused with ErrNameInUse, which
// the service reads as a stale container of its own to replace.
func TestCreateNameInUse(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	img, _ := emulatortest.TestImage(context.Background())
	err := d.Create(context.Background(), docker.ContainerSpec{Name: name, Image: img})
	if !errors.Is(err, docker.ErrNameInUse) {
		t.Fatalf("err = %v, want ErrNameInUse", err)
	}
}

// A command that never reads its stdin while more keeps coming (an upload
// into a stuck command) is still killed when the caller gives up.
func TestExecCancelWithUnreadStdin(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		pr, pw := io.Pipe()
		defer pr.Close()
		go func() {
			chunk := bytes.Repeat([]byte("y"), 64<<10)
			for {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := d.Exec(ctx, name, docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", "sleep 303"}, Stdin: pr})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("cancel took %v", el)
		}
		ps, _, _, err := run(t, d, context.Background(), name, `ps -o args | grep -c '^sleep 303'`)
		if err != nil || strings.TrimSpace(ps) != "0" {
			t.Fatalf("processes left: %q (err %v)", ps, err)
		}
	})
}

// A pause waits for an exec that is starting in the container (a frozen
// `runc init` wedges the engine's shim for good), and runs once it has.
func TestPauseWaitsForAnExecStart(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	started := d.ExecStarting(name)
	paused := make(chan error, 1)
	go func() { paused <- d.Pause(context.Background(), name) }()
	select {
	case err := <-paused:
		started()
		t.Fatalf("Pause returned (%v) while an exec was starting", err)
	case <-time.After(300 * time.Millisecond):
	}
	started()
	select {
	case err := <-paused:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Pause did not run after the exec had started")
	}
	if st, err := d.Inspect(context.Background(), name); err != nil || !st.Paused {
		t.Fatalf("after Pause: %+v %v", st, err)
	}
	if err := d.Unpause(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}
