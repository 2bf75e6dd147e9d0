package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// TestDockerImage builds rtemu's image from the Dockerfile (offline: the
// base is scratch), runs it with the Docker socket mounted, and checks that
// it serves and makes sandboxes.
func TestDockerImage(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	img, err := emulatortest.TestImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "rtemu"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := fmt.Sprintf("rtemu-test/rtemu:%d", time.Now().UnixNano())
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })

	name := strings.ReplaceAll(strings.TrimPrefix(tag, "rtemu-test/"), ":", "-")
	dataDir := t.TempDir()
	out, err := exec.Command("docker", "run", "-d", "--name", name, "-p", "127.0.0.1::7070",
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", dataDir+":"+dataDir,
		"-e", "RTEMU_DATA_DIR="+dataDir, "-e", "RTEMU_EPHEMERAL=false",
		tag, "serve", "--template", "base-ubuntu="+img).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	port, err := exec.Command("docker", "port", name, "7070/tcp").Output()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + strings.TrimSpace(strings.Split(string(port), "\n")[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
			t.Fatalf("the image does not answer /health: %v\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", url+"/v1/sandboxes", strings.NewReader(`{"template":"base-ubuntu"}`))
	req.Header.Set("X-API-Key", emulatortest.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Data struct{ ID string } }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create through the image: %d", resp.StatusCode)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "rtemu-"+created.Data.ID).Run() })
	for {
		out, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", "rtemu-"+created.Data.ID).Output()
		if strings.TrimSpace(string(out)) == "true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sandbox made by the image never ran")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The static binary is its own exec agent, with no loader: the
	// command's parent is /.rtemu/<dir>/rtemu-agent itself.
	body := `{"command":"tr '\\0' ' ' </proc/$PPID/cmdline"}`
	for {
		req, _ = http.NewRequest("POST", url+"/v1/sandboxes/"+created.Data.ID+"/exec", strings.NewReader(body))
		req.Header.Set("X-API-Key", emulatortest.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ran struct{ Data struct{ Stdout string } }
		_ = json.NewDecoder(resp.Body).Decode(&ran)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if first := strings.Fields(ran.Data.Stdout); len(first) == 0 || !strings.HasPrefix(first[0], "/.rtemu/") || !strings.HasSuffix(first[0], "/rtemu-agent") {
				t.Fatalf("the command's parent is %q, want the static agent", ran.Data.Stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec through the image: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
