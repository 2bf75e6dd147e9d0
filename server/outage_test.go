//go:build linux

package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// engine is a Docker daemon of the test's own, apart from the machine's in
// every way that matters: its own bridge (made by the test) and subnet,
// data root, exec root, pidfile, socket, containerd
// namespace and an empty config file, and no iptables rules. It must never
// be started with --bridge=none, which removes the host's docker0.
type engine struct {
	t      *testing.T
	dir    string
	bridge string
	socket string
	args   []string
	cmd    *exec.Cmd
	log    *os.File
	// networks are the bridges of the networks made on this engine
	// (br-<id>): the host keeps them after the daemon is gone, and a host
	// full of them leaves no address pool for the next engine's networks.
	networks map[string]bool
}

func startEngine(t *testing.T) *engine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a second Docker daemon needs root")
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skip("no dockerd to start a second engine with")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command to make the second engine's bridge with")
	}
	// Short paths: containerd's sockets live under the exec root.
	dir, err := os.MkdirTemp("", "rtd")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	octet := 100 + int(b[0])%100
	e := &engine{t: t, dir: dir, bridge: "rtemut" + hex.EncodeToString(b), socket: filepath.Join(dir, "d.sock")}
	t.Cleanup(e.remove)
	subnet := fmt.Sprintf("10.213.%d.1/24", octet)
	for _, args := range [][]string{
		{"link", "add", "name", e.bridge, "type", "bridge"},
		{"addr", "add", subnet, "dev", e.bridge},
		{"link", "set", e.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("cannot make a bridge for a second engine (ip %v): %v %s", args, err, out)
		}
	}
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := "rtemu-test-" + hex.EncodeToString(b)
	e.args = []string{dockerd,
		"--config-file", cfg, "--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "x"),
		"--pidfile", filepath.Join(dir, "pid"), "--host", "unix://" + e.socket,
		// No --default-address-pool: with one, a restarted dockerd that
		// finds its old "bridge" network deletes the interface named
		// docker0 (moby's removeDefaultBridgeInterface), the host's own.
		"--bridge", e.bridge,
		"--iptables=false", "--ip-masq=false", "--ip-forward=false",
		"--containerd-namespace", ns, "--containerd-plugins-namespace", ns + "-plugins",
		"--storage-driver", "vfs",
	}
	e.start()
	return e
}

func (e *engine) start() {
	e.t.Helper()
	var err error
	if e.log, err = os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.cmd = exec.Command(e.args[0], e.args[1:]...)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		e.t.Skipf("cannot start a second dockerd: %v", err)
	}
	cli := e.client()
	defer cli.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || e.cmd.ProcessState != nil {
			e.stop(syscall.SIGKILL)
			e.t.Skipf("the second dockerd did not answer within 60 s (%v); its log:\n%s", err, e.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *engine) client() *client.Client {
	cli, err := client.New(client.WithHost("unix://" + e.socket))
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

// logTail is the end of the daemon's log, less containerd's gRPC chatter.
func (e *engine) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "module=grpc") && !strings.Contains(line, "loading plugin") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep[max(0, len(keep)-40):], "\n")
}

// stop sends sig to dockerd alone and waits for it to end.
func (e *engine) stop(sig syscall.Signal) {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	if e.cmd.ProcessState == nil {
		e.rememberNetworks()
	}
	_ = e.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
	e.log.Close()
	e.cmd = nil
}

// crash kills the daemon, its containerd and every container process it
// ran, as a crash of the engine's machine would. The containerd and the
// shims it leaves are found by this engine's own folder in their command
// lines (nothing else matches it); a shim's children are its containers.
func (e *engine) crash() {
	e.stop(syscall.SIGKILL)
	for _, pid := range processes(func(cmdline string) bool { return strings.Contains(cmdline, e.dir+"/") }) {
		for _, child := range childrenOf(pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// A killed containerd may linger as a zombie (this machine's init need
	// not reap it), which dockerd would take for a running containerd and
	// wait on: its pid file goes, so the next start makes a new one.
	_ = os.Remove(filepath.Join(e.dir, "x", "containerd", "containerd.pid"))
}

// processes lists the pids whose command line matches.
func processes(match func(cmdline string) bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && match(strings.ReplaceAll(string(b), "\x00", " ")) {
			out = append(out, pid)
		}
	}
	return out
}

func childrenOf(parent int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ")".
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			if pid, err := strconv.Atoi(ent.Name()); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// remove stops the daemon gracefully (it stops its containers and its
// containerd), kills what a crash left, unmounts what it mounted under its
// folder (its data root, network namespaces) and removes its bridge and
// files.
// rememberNetworks notes the bridges of the engine's networks, while it
// answers, so remove can take them away.
func (e *engine) rememberNetworks() {
	cli := e.client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return
	}
	if e.networks == nil {
		e.networks = map[string]bool{}
	}
	for _, n := range nets.Items {
		if n.Driver == "bridge" && len(n.ID) >= 12 && n.Name != "bridge" {
			e.networks["br-"+n.ID[:12]] = true
		}
	}
}

func (e *engine) remove() {
	e.stop(syscall.SIGTERM)
	e.crash()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- { // deepest (latest) first
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
	_ = exec.Command("ip", "link", "del", e.bridge).Run()
	for br := range e.networks {
		_ = exec.Command("ip", "link", "del", br).Run()
	}
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Errorf("removing the second engine's files: %v", err)
	}
}

// loadTestImage copies the test image from the machine's engine.
func (e *engine) loadTestImage(ctx context.Context) string {
	e.t.Helper()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	main, err := client.New(client.FromEnv)
	if err != nil {
		e.t.Fatal(err)
	}
	defer main.Close()
	rc, err := main.ImageSave(ctx, []string{img})
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	cli := e.client()
	defer cli.Close()
	resp, err := cli.ImageLoad(ctx, rc)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Close()
	_, _ = io.Copy(io.Discard, resp)
	return img
}

// TestEngineOutage runs rtemu on an engine of the test's own and takes the
// engine away: every call that needs it answers 503 docker_unavailable
// (never 500), a create accepted while the engine hung fails naming the
// outage, and once the engine is back (after a crash: every process of its
// containers is gone) the sandbox whose container ended says so and can be
// deleted.
func TestEngineOutage(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	e := startEngine(t)
	img := e.loadTestImage(context.Background())
	p := startRtemuVia(t, t.TempDir(), "env", "DOCKER_HOST=unix://"+e.socket)
	code, sb := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, sb)
	}
	a := sb["id"].(string)
	p.waitStatus(a, "running", 60*time.Second)
	if code, res := p.do("POST", "/v1/sandboxes/"+a+"/exec", map[string]any{"command": "echo up"}); code != 200 || res["stdout"] != "up\n" {
		t.Fatalf("exec on the second engine: %d %v (image %s)", code, res, img)
	}

	// The engine hangs: a create is accepted (it needs no engine to be
	// recorded), then the engine dies under its provisioning.
	if err := e.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	code, sb = p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	if code != http.StatusCreated {
		_ = e.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("create while the engine hangs: %d %v", code, sb)
	}
	b := sb["id"].(string)
	e.crash()
	p.waitStatus(b, "failed", 30*time.Second)
	_, got := p.do("GET", "/v1/sandboxes/"+b, nil)
	if msg, _ := got["error"].(string); !strings.Contains(msg, "Docker engine") {
		t.Errorf("the create cut short by the outage failed with %q", msg)
	}

	// Down: every call that needs the engine is a 503, none a 500.
	calls := []struct{ method, path string }{
		{"POST", "/v1/sandboxes/" + a + "/exec"},
		{"POST", "/v1/sandboxes"},
		{"POST", "/v1/sandboxes/" + a + "/pause"},
		{"GET", "/v1/sandboxes/" + a + "/stats"},
		{"DELETE", "/v1/sandboxes/" + a},
	}
	for _, c := range calls {
		var body any
		switch {
		case strings.HasSuffix(c.path, "/exec"):
			body = map[string]any{"command": "true"}
		case c.path == "/v1/sandboxes":
			body = map[string]any{"template": "base-ubuntu"}
		}
		code, errBody := p.doRaw(c.method, c.path, body)
		if code != http.StatusServiceUnavailable || !strings.Contains(errBody, `"docker_unavailable"`) {
			t.Errorf("%s %s with the engine down: %d %s", c.method, c.path, code, errBody)
		}
	}
	if code, _ := p.do("GET", "/v1/sandboxes/"+a, nil); code != http.StatusOK {
		t.Errorf("GET of a sandbox (no engine needed): %d", code)
	}

	// Back: the engine's restart ended a's container.
	e.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, got = p.do("GET", "/v1/sandboxes/"+a, nil)
		if got["status"] == "error" && got["error"] == "the Docker engine restarted; processes were lost" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the engine came back: status %v, error %v", got["status"], got["error"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, d := p.do("DELETE", "/v1/sandboxes/"+a, nil); code != http.StatusOK || d["deleted"] != true {
		t.Fatalf("delete after the outage: %d %v", code, d)
	}
	if code, d := p.do("DELETE", "/v1/sandboxes/"+b, nil); code != http.StatusOK {
		t.Fatalf("delete of the failed create: %d %v", code, d)
	}
	// And the engine works again for new sandboxes.
	code, sb = p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	if code != http.StatusCreated {
		t.Fatalf("create after the outage: %d %v", code, sb)
	}
	c := sb["id"].(string)
	p.waitStatus(c, "running", 60*time.Second)

	// The engine stops gracefully (it stops its containers) while a
	// command runs: the command's answer is a 503 naming the engine, not
	// a 500.
	answer := make(chan string, 1)
	go func() {
		code, body := p.doRaw("POST", "/v1/sandboxes/"+c+"/exec", map[string]any{"command": "touch /tmp/started; sleep 60", "timeout": 120000})
		answer <- fmt.Sprintf("%d %s", code, body)
	}()
	deadline = time.Now().Add(30 * time.Second)
	for {
		if code, res := p.do("POST", "/v1/sandboxes/"+c+"/exec", map[string]any{"command": "test -f /tmp/started"}); code == 200 && res["exitCode"] == float64(0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the long command did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.stop(syscall.SIGTERM)
	select {
	case got := <-answer:
		if !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"docker_unavailable"`) {
			t.Errorf("a command running while the engine stopped was answered %s", got)
		}
	case <-time.After(90 * time.Second):
		t.Error("a command running while the engine stopped got no answer in 90 s")
	}
}
