package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

func TestDoctor(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	img, err := emulatortest.TestImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Config{Addr: busy.Addr().String(), SSHAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}, {Name: "gone", Image: "rtemu-test/none:missing"}}}
	var out bytes.Buffer
	healthy := server.Doctor(context.Background(), cfg, &out)
	text := out.String()
	for _, want := range []string{
		"ok   docker: engine",
		"ok   template base-ubuntu: image " + img + " present",
		"warn template gone: image rtemu-test/none:missing is not here; the first create pulls it (a registry is needed); " +
			"have it now: docker pull rtemu-test/none:missing, or map the template to a local image: --template gone=LOCAL_IMAGE",
		"FAIL API address " + cfg.Addr + " is not free",
		"ok   SSH address 127.0.0.1:0 is free",
		// what the setup is and what it means
		"info setup: Docker Engine",
		"info container addresses: routable from here; rtemu does not use them",
		"info exec agent: built with the local Go toolchain for linux/",
		"info workspace mounts: the engine sees the data dir " + cfg.DataDir + " at the same path: mounts work",
		"info agent link: commands and port connections go by a unix socket in " + filepath.Join(cfg.DataDir, "link"),
		"disk limits: ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, text)
		}
	}
	// This machine's fuse-overlayfs cannot hold a container to a size.
	if drv, err := exec.Command("docker", "info", "--format", "{{.Driver}}").Output(); err == nil && strings.TrimSpace(string(drv)) == "fuse-overlayfs" &&
		!strings.Contains(text, "warn disk limits: not enforced on this engine: the engine's storage driver (fuse-overlayfs) has no per-container size") {
		t.Errorf("doctor does not say disk is not enforced on fuse-overlayfs:\n%s", text)
	}
	if healthy {
		t.Error("doctor called a busy port healthy")
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(rtemuBinary(t), "version").Output()
	if err != nil || !regexp.MustCompile(`^rtemu \S+\n$`).Match(out) {
		t.Fatalf("rtemu version: %q, %v", out, err)
	}
}

// TestEphemeral: --ephemeral keeps state in a temporary dir and removes it
// and every container at exit.
func TestEphemeral(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	img, _ := emulatortest.TestImage(context.Background())
	cmd := exec.Command(rtemuBinary(t), "--ephemeral", "--addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0",
		"--template", "base-ubuntu="+img)
	p, line := launch(t, cmd)
	m := regexp.MustCompile(`data dir (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("start line %q", line)
	}
	dataDir := m[1]
	code, data := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	if code != 201 {
		t.Fatalf("create: %d", code)
	}
	id := data["id"].(string)
	p.waitStatus(id, "running", 30*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rtemu did not exit on SIGTERM")
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("ephemeral data dir %s still there (%v)", dataDir, err)
	}
	if _, err := driver(t).Inspect(context.Background(), "rtemu-"+id); err == nil {
		t.Errorf("container of %s still there", id)
	}
}

// TestHealthWithoutDocker: rtemu starts when no engine answers, and /health
// says so with a 503.
func TestHealthWithoutDocker(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(rtemuBinary(t), "--addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent/docker.sock")
	p, _ := launch(t, cmd)
	resp, err := http.Get(p.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&h)
	if resp.StatusCode != 503 || h["docker"] != "unavailable" || h["reason"] == "" {
		t.Fatalf("health %d %v", resp.StatusCode, h)
	}
	if code, _ := p.do("GET", "/v1/sandboxes/sandbox-000000000000/exec", nil); code != 405 {
		t.Errorf("routing without docker: %d", code)
	}
	// A create is refused (nothing recorded) rather than accepted to fail.
	req, _ := http.NewRequest("POST", p.url+"/v1/sandboxes", strings.NewReader(`{"template":"base-ubuntu"}`))
	req.Header.Set("X-API-Key", emulatortest.APIKey)
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer cresp.Body.Close()
	var body struct{ Error struct{ Code string } }
	_ = json.NewDecoder(cresp.Body).Decode(&body)
	if cresp.StatusCode != 503 || body.Error.Code != "docker_unavailable" {
		t.Fatalf("create without docker: %d %+v", cresp.StatusCode, body)
	}
	if _, list := p.list(); len(list) != 0 {
		t.Fatalf("sandboxes recorded: %v", list)
	}
}

// TestEnvCommand: `rtemu env` prints the lines that point the SDK at the
// running rtemu of a data dir, and fails when none runs.
func TestEnvCommand(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	dataDir := t.TempDir()
	instanceContainers(t, dataDir)
	p := startRtemu(t, dataDir)
	out, err := exec.Command(rtemuBinary(t), "env", "--data-dir", dataDir).Output()
	if err != nil {
		t.Fatalf("rtemu env: %v", err)
	}
	m := regexp.MustCompile(`^export RUNTOOLS_API_URL=(\S+) RUNTOOLS_API_KEY=(rt_test_[A-Za-z0-9]{32})\n$`).FindStringSubmatch(string(out))
	if m == nil || m[1] != p.url {
		t.Fatalf("rtemu env printed %q; rtemu is at %s", out, p.url)
	}
	req, _ := http.NewRequest("GET", m[1]+"/v1/sandboxes", nil)
	req.Header.Set("X-API-Key", m[2])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the printed URL and key do not work: %v %v", resp, err)
	}
	resp.Body.Close()
	p.kill()
	if err := exec.Command(rtemuBinary(t), "env", "--data-dir", dataDir).Run(); err == nil {
		t.Fatal("rtemu env succeeded with no rtemu running")
	}
}

// launch starts an rtemu command, killed at the test's end, and reads its
// start line, which gives the API's URL.
func launch(t *testing.T, cmd *exec.Cmd) (*proc, string) {
	t.Helper()
	p := &proc{t: t, cmd: cmd, log: &emulatortest.Buffer{}}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	buf := make([]byte, 512)
	n, _ := stdout.Read(buf)
	line := string(buf[:n])
	m := apiLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("start line %q; log %s", line, p.log)
	}
	p.url = m[1]
	return p, line
}

func TestSameAddr(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:7070", "127.0.0.1:7070", true},
		{"[::]:7070", "0.0.0.0:7070", true},
		{"0.0.0.0:2222", ":2222", true},
		{"127.0.0.1:7070", "127.0.0.1:7071", false},
		{"127.0.0.1:7070", "0.0.0.0:7070", false},
		{"nonsense", "127.0.0.1:7070", false},
	} {
		if got := server.SameAddr(tt.a, tt.b); got != tt.want {
			t.Errorf("sameAddr(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
