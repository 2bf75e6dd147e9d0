package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/client"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/internal/buildinfo"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// runChild is rtemu's main in a child process of the tests.
func runChild(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, args, OSEnv(buildinfo.Info{Version: "test"}))
}

// child is rtemu running as a process of its own.
type child struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
}

// childCmd is this test binary made to run rtemu with args, its temporary
// folder (where --ephemeral data dirs go) being tmp.
func childCmd(t *testing.T, tmp string, args ...string) *exec.Cmd {
	t.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RTEMU_") && !strings.HasPrefix(kv, "TMPDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	if len(args) > 0 {
		cmd.Env = append(cmd.Env, childArgs+"="+string(a))
	}
	return cmd
}

// startServe starts `rtemu serve args…` in a child and waits for its address.
func startServe(t *testing.T, tmp string, args ...string) *child {
	t.Helper()
	c := &child{cmd: childCmd(t, tmp, append([]string{"serve"}, args...)...), stderr: &strings.Builder{}}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.Contains(s.Text(), "API http") {
				lines <- s.Text()
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-lines:
		c.url = strings.TrimSuffix(strings.Fields(l[strings.Index(l, "API "):])[1], ",")
	case <-time.After(2 * time.Minute):
		t.Fatalf("rtemu did not start: %s", c.stderr)
	}
	return c
}

// TestEphemeralKilledLeavesNothing: an --ephemeral rtemu killed with -9
// leaves its container and folder; the next rtemu serve removes them at
// start, and so does rtemu gc; an rtemu that runs is never touched.
func TestEphemeralKilledLeavesNothing(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := docker.New()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	eng := d.Engine()
	tmp := t.TempDir()
	args := []string{"--ephemeral", "--addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0", "--template", "base-ubuntu=" + img}

	// containers lists an instance's containers.
	containers := func(instance string) int {
		t.Helper()
		cs, err := eng.List(ctx, map[string]string{sandbox.LabelInstance: instance})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	// withSandbox starts an ephemeral rtemu with a running sandbox and
	// returns it, its folder and its instance.
	withSandbox := func() (*child, string, string) {
		t.Helper()
		before, _ := filepath.Glob(filepath.Join(tmp, "rtemu-ephemeral-*"))
		c := startServe(t, tmp, args...)
		api := client.New(c.url, emulatortest.APIKey, nil)
		sb, err := api.CreateSandbox(ctx, client.CreateSandbox{Template: "base-ubuntu"})
		if err != nil {
			t.Fatal(err)
		}
		if sb, err = api.WaitSandbox(ctx, sb.ID, 50*time.Millisecond, nil, "creating"); err != nil || sb.Status != "running" {
			t.Fatalf("sandbox %+v: %v", sb, err)
		}
		after, _ := filepath.Glob(filepath.Join(tmp, "rtemu-ephemeral-*"))
		var made []string
		for _, a := range after {
			if !slices.Contains(before, a) {
				made = append(made, a)
			}
		}
		if len(made) != 1 {
			t.Fatalf("ephemeral folders before %v, after %v", before, after)
		}
		dir := made[0]
		var h server.Holder
		b, err := os.ReadFile(filepath.Join(dir, "rtemu.lock"))
		if err == nil {
			err = json.Unmarshal(b, &h)
		}
		if err != nil || h.Instance == "" || h.URL != c.url || !h.Ephemeral {
			t.Fatalf("lock file of %s: %v: %+v", dir, err, h)
		}
		if n := containers(h.Instance); n != 1 {
			t.Fatalf("%d containers of the instance, want 1", n)
		}
		return c, dir, h.Instance
	}
	kill := func(c *child) {
		t.Helper()
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = c.cmd.Wait()
	}
	gone := func(what, dir, instance string) {
		t.Helper()
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the folder %s is still there (%v)", what, dir, err)
		}
		if n := containers(instance); n != 0 {
			t.Errorf("%s: %d containers of the instance remain", what, n)
		}
	}

	first, dir1, inst1 := withSandbox()
	kill(first)
	if n := containers(inst1); n != 1 {
		t.Fatalf("after kill -9: %d containers, want the 1 left behind", n)
	}
	// The next run removes them before it serves.
	second, dir2, inst2 := withSandbox()
	gone("after the next start", dir1, inst1)
	kill(second)

	// rtemu gc does too, and never touches a live rtemu's.
	gc := func() string {
		t.Helper()
		out, err := childCmd(t, tmp, "gc").CombinedOutput()
		if err != nil {
			t.Fatalf("rtemu gc: %v: %s", err, out)
		}
		return string(out)
	}
	if out := gc(); !strings.Contains(out, "removed "+dir2) {
		t.Fatalf("rtemu gc said %q", out)
	}
	gone("after rtemu gc", dir2, inst2)
	third, dir3, inst3 := withSandbox()
	if out := gc(); !strings.Contains(out, "nothing to remove") {
		t.Fatalf("rtemu gc beside a running rtemu said %q", out)
	}
	if _, err := os.Stat(dir3); err != nil || containers(inst3) != 1 {
		t.Fatalf("the running rtemu's folder or container was touched: %v", err)
	}

	// Ctrl-C: an ephemeral rtemu removes its own and exits 0.
	if err := third.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := third.cmd.Wait(); err != nil {
		t.Fatalf("rtemu after SIGINT: %v\n%s", err, third.stderr)
	}
	gone("after SIGINT", dir3, inst3)
	testwait.Until(t, 5*time.Second, func() bool {
		left, _ := filepath.Glob(filepath.Join(tmp, "rtemu-ephemeral-*"))
		return len(left) == 0
	}, "ephemeral folders left in %s", tmp)
}

// childTestRtemu, in the environment, makes this test binary run an
// in-process rtemu as a test does (emulatortest on Docker, its containers
// removed at Close) on the data dir it names, with one running sandbox,
// until it is killed.
const childTestRtemu = "RTEMU_CLI_TEST_RTEMU"

func runTestRtemu(dir string) int {
	ctx := context.Background()
	srv, err := emulatortest.Start(ctx, emulatortest.WithDataDir(dir))
	if err == nil {
		var sb *sandbox.Sandbox
		if sb, err = srv.Service().Create(ctx, sandbox.CreateParams{Template: "base-ubuntu"}); err == nil {
			err = testwait.For(time.Minute, func() error {
				got, err := srv.Service().Get(ctx, sb.ID)
				if err == nil && got.Status != sandbox.StatusRunning {
					err = fmt.Errorf("sandbox %s", got.Status)
				}
				return err
			})
		}
	}
	if err != nil {
		fmt.Println("failed:", err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

// TestKilledTestBinaryLeavesNothing: a test binary killed (as at its
// timeout) while its rtemu runs leaves a container; the next sweep
// (rtemu gc here; every rtemu start too) removes it and the data dir.
func TestKilledTestBinaryLeavesNothing(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "TestSomething", "001")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := childCmd(t, tmp)
	cmd.Env = append(cmd.Env, childTestRtemu+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("test rtemu: %q %v", line, err)
	}
	var h server.Holder
	b, err := os.ReadFile(filepath.Join(dir, "rtemu.lock"))
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil || h.Instance == "" {
		t.Fatalf("lock file: %v %+v", err, h)
	}
	d, err := docker.New()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	count := func() int {
		cs, err := d.Engine().List(ctx, map[string]string{sandbox.LabelInstance: h.Instance})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	gc := func() string {
		out, err := childCmd(t, tmp, "gc").CombinedOutput()
		if err != nil {
			t.Fatalf("rtemu gc: %v: %s", err, out)
		}
		return string(out)
	}
	if got := gc(); !strings.Contains(got, "nothing to remove") || count() != 1 {
		t.Fatalf("rtemu gc beside a live test rtemu: %q, %d containers", got, count())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := count(); n != 1 {
		t.Fatalf("after kill -9: %d containers, want the 1 left behind", n)
	}
	if got := gc(); !strings.Contains(got, "removed the 1 container(s) of "+dir) {
		t.Fatalf("rtemu gc said %q", got)
	}
	if n := count(); n != 0 {
		t.Errorf("%d containers left after rtemu gc", n)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data dir %s is still there (%v)", dir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "rtemu-disposable-*")); len(left) != 0 {
		t.Errorf("markers left: %v", left)
	}
}

// TestDoctorWithoutAnEngine: doctor fails, exit status 1, and says where
// the usual setups' engines are.
func TestDoctorWithoutAnEngine(t *testing.T) {
	t.Parallel()
	cmd := childCmd(t, t.TempDir(), "doctor", "--data-dir", filepath.Join(t.TempDir(), "d"))
	cmd.Env = append(cmd.Env, "DOCKER_HOST=unix:///nonexistent/docker.sock")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("doctor without an engine: %v\n%s", err, out)
	}
	for _, want := range []string{"FAIL docker: no engine answers at unix:///nonexistent/docker.sock", "hint Podman: DOCKER_HOST=unix://$(podman info",
		"hint rootless Docker: DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}
