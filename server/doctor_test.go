package server_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
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
	cfg := config.Config{Addr: busy.Addr().String(), SSHAddr: "127.0.0.1:0",
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}, {Name: "gone", Image: "rtemu-test/none:missing"}}}
	var out bytes.Buffer
	healthy := server.Doctor(context.Background(), cfg, &out)
	text := out.String()
	for _, want := range []string{
		"ok   docker: engine",
		"ok   template base-ubuntu: image " + img + " present",
		"warn template gone: image rtemu-test/none:missing is not present",
		"--template gone=IMAGE",
		"FAIL API address " + cfg.Addr + " is not free",
		"ok   SSH address 127.0.0.1:0 is free",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, text)
		}
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
	p := &proc{t: t, cmd: cmd, log: &bytes.Buffer{}}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	line := make([]byte, 512)
	n, _ := stdout.Read(line)
	m := regexp.MustCompile(`API (\S+), data dir (\S+)`).FindStringSubmatch(string(line[:n]))
	if m == nil {
		t.Fatalf("start line %q", line[:n])
	}
	p.url = strings.TrimSuffix(m[1], ",")
	dataDir := m[2]
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
