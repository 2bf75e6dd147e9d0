package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testtool"
)

// TestDockerImage builds rtemu's image from the Dockerfile (offline: the
// base is scratch), runs it with the Docker socket mounted, and checks that
// it serves and makes sandboxes.
func TestDockerImage(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	testtool.Need(t, "docker.io", "docker")
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
	// Only the API and SSH ports are published, on ports of the host's
	// choosing, and rtemu is told where they are, as the README says.
	apiAddr, sshAddr := freeAddr(t), freeAddr(t)
	out, err := exec.Command("docker", "run", "-d", "--name", name,
		"-p", apiAddr+":7070", "-p", sshAddr+":2222",
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", dataDir+":"+dataDir,
		"-e", "RTEMU_DATA_DIR="+dataDir, "-e", "RTEMU_EPHEMERAL=false",
		"-e", "RTEMU_PUBLIC_ADDR="+apiAddr, "-e", "RTEMU_PUBLIC_SSH_ADDR="+sshAddr,
		tag, "serve", "--template", "base-ubuntu="+img, "--template", "desktop-ubuntu="+img).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	url := "http://" + apiAddr
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
	req, _ := http.NewRequest("POST", url+"/v1/sandboxes", strings.NewReader(`{"template":"desktop-ubuntu","rootPassword":"correct horse"}`))
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
	// command's parent is /.rtemu/<dir>/rtemu-agent itself. A command the
	// agent could not take yet (its start is slow on a busy machine) runs
	// by Docker exec, with no parent in the container (an empty answer):
	// the next one goes to the agent again, so only an agent that never
	// comes, or a wrong parent, fails.
	body := `{"command":"tr '\\0' ' ' </proc/$PPID/cmdline"}`
	deadline = time.Now().Add(time.Minute)
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
		if resp.StatusCode == 200 && (ran.Data.Stdout != "" || time.Now().After(deadline)) {
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
	addressesReachFromHost(t, url, created.Data.ID)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// addressesReachFromHost checks that every address rtemu in a container
// hands out reaches the sandbox from the host: the dev URL's two forms, the
// desktop's URL and the ssh command.
func addressesReachFromHost(t *testing.T, api, id string) {
	t.Helper()
	call := func(method, path, body string, into any) {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		req.Header.Set("X-API-Key", emulatortest.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		_ = json.NewDecoder(resp.Body).Decode(into)
	}
	var ran any
	call("POST", "/v1/sandboxes/"+id+"/exec", `{"command":"mkdir -p /www && echo reached > /www/index.html && httpd -p 127.0.0.1:3000 -h /www && httpd -p 6901 -h /www"}`, &ran)

	// *.localhost is loopback, as browsers and curl resolve it.
	web := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		if strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}}
	fetch := func(what, u string) {
		t.Helper()
		resp, err := web.Get(u)
		if err != nil {
			t.Fatalf("%s %s: %v", what, u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "reached\n" {
			t.Fatalf("%s %s: %d %q", what, u, resp.StatusCode, b)
		}
	}
	var u struct {
		Data struct{ URL, LocalhostURL string }
	}
	call("GET", "/v1/sandboxes/"+id+"/url?port=3000", "", &u)
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(api, "http://"))
	if !strings.HasSuffix(u.Data.URL, ".localhost:"+apiPort) {
		t.Errorf("url %q is not on the published API port %s", u.Data.URL, apiPort)
	}
	fetch("url", u.Data.URL)
	fetch("localhostUrl", u.Data.LocalhostURL)
	var v struct{ Data struct{ URL string } }
	call("GET", "/v1/sandboxes/"+id+"/vnc", "", &v)
	fetch("vnc url", v.Data.URL)

	var s struct {
		Data struct {
			Command, Host, User string
			Port                int
		}
	}
	call("GET", "/v1/sandboxes/"+id+"/ssh", "", &s)
	cfg := &gossh.ClientConfig{User: s.Data.User, Auth: []gossh.AuthMethod{gossh.Password("correct horse")},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	c, err := gossh.Dial("tcp", net.JoinHostPort(s.Data.Host, strconv.Itoa(s.Data.Port)), cfg)
	if err != nil {
		t.Fatalf("the ssh command %q does not reach the gateway: %v", s.Data.Command, err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if out, err := sess.Output("cat /www/index.html"); err != nil || string(out) != "reached\n" {
		t.Fatalf("ssh %q: %q %v", s.Data.Command, out, err)
	}
	if want := "ssh -p " + strconv.Itoa(s.Data.Port) + " " + id + "@"; !strings.HasPrefix(s.Data.Command, want) {
		t.Errorf("ssh command %q", s.Data.Command)
	}
}
