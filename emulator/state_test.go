package emulator_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/state"
)

// saveState saves a server's state to a file of the test.
func saveState(t *testing.T, srv *emulatortest.Server) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "state.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.SaveState(ctx, f); err != nil {
		t.Fatal(err)
	}
	return file
}

// sshRun runs a command over the gateway with a key.
func sshRun(t *testing.T, addr, user string, signer gossh.Signer, cmd string) (string, error) {
	t.Helper()
	conn, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	sess, err := conn.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	return string(out), err
}

// A warmed state saved on Docker comes back in another rtemu (--seed) with
// the same ids, names, records, files and statuses; changes there go away
// at a reset to the seed, which keeps the seed's images.
func TestStateSaveSeedReset(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(signer.PublicKey())))
	c.must(http.StatusCreated, "POST", "/v1/ssh-keys", map[string]any{"name": "ci", "publicKey": pub})
	proj := c.must(http.StatusCreated, "POST", "/v1/projects", map[string]any{"name": "warm"}).Data()["id"].(string)
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "TOKEN", "value": "s3cret"})
	ws := c.workspace(map[string]any{"name": "src"})
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+ws+"/files", map[string]any{"name": "main.go", "type": "file", "contents": "package main"})
	warm := c.create(map[string]any{"name": "warm", "tags": []string{"ci", "go"}, "env": map[string]string{"GOFLAGS": "-mod=mod"},
		"metadata": map[string]any{"team": "a"}, "projectId": proj})["id"].(string)
	c.sh(warm, "mkdir -p /opt/tool && echo toolchain > /opt/tool/version && echo in-workspace > /workspace/w.txt")
	paused := c.create(map[string]any{"name": "frozen"})["id"].(string)
	c.sh(paused, "echo cold > /root/f.txt")
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+paused+"/pause", nil)
	c.waitStatus(paused, "paused")

	// No seed loaded here: a reset to it says so, and changes nothing.
	if r := c.do("POST", "/_emulator/reset", map[string]any{"to": "seed"}); r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "no seed") {
		t.Fatalf("reset to a seed never loaded: %d %s", r.Status, r.Body)
	}
	if r := c.do("POST", "/_emulator/reset", map[string]any{"to": "yesterday"}); r.Status != http.StatusBadRequest {
		t.Fatalf("reset to an unknown target: %d %s", r.Status, r.Body)
	}
	c.must(http.StatusOK, "GET", "/v1/sandboxes/"+warm, nil)

	file := saveState(t, c.srv)
	// The saved rtemu goes on as it was.
	if got := c.sh(warm, "cat /opt/tool/version"); got != "toolchain\n" {
		t.Fatalf("after the save: %q", got)
	}
	c.waitStatus(paused, "paused")

	// A corrupt copy is refused after its images went into the engine: they
	// go again, and the state is as it was.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := state.ReadManifest(bytes.NewReader(raw))
	if err != nil || len(m.Images) != 2 {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	bad := rewriteArchive(t, raw, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name == state.RecordsName {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
		}
		return h, body
	})
	if r := c.do("POST", "/_emulator/state", bad, "Content-Type", "application/x-tar"); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "corrupt") {
		t.Fatalf("corrupt archive: %d %s", r.Status, r.Body)
	}
	for _, ref := range m.Images {
		if ok, err := emulatortest.Docker(t).ImagePresent(context.Background(), ref); err != nil || ok {
			t.Errorf("image %s of a refused load: present %v, %v", ref, ok, err)
		}
	}
	if got := c.sh(warm, "cat /opt/tool/version"); got != "toolchain\n" {
		t.Fatalf("after a refused load: %q", got)
	}

	// Another rtemu on the same engine, seeded with it.
	c2 := &client{t: t, srv: emulatortest.New(t, emulatortest.WithSeed(file)), key: emulatortest.APIKey}
	got := c2.must(http.StatusOK, "GET", "/v1/sandboxes/warm", nil).Data()
	if got["id"] != warm || got["status"] != "running" || got["projectId"] != proj ||
		got["env"].(map[string]any)["GOFLAGS"] != "-mod=mod" || got["metadata"].(map[string]any)["team"] != "a" ||
		len(got["tags"].([]any)) != 2 {
		t.Fatalf("seeded sandbox: %v", got)
	}
	if out := c2.sh(warm, "cat /opt/tool/version /workspace/w.txt"); out != "toolchain\nin-workspace\n" {
		t.Fatalf("seeded sandbox's files: %q", out)
	}
	if st := c2.must(http.StatusOK, "GET", "/v1/sandboxes/"+paused, nil).Data()["status"]; st != "paused" {
		t.Fatalf("sandbox saved paused is %v", st)
	}
	c2.must(http.StatusOK, "POST", "/v1/sandboxes/"+paused+"/resume", nil)
	c2.waitStatus(paused, "running")
	if out := c2.sh(paused, "cat /root/f.txt"); out != "cold\n" {
		t.Fatalf("paused sandbox's files: %q", out)
	}
	if r := c2.must(http.StatusOK, "GET", "/v1/workspaces/"+ws+"/direct?path=/main.go", nil); string(r.Body) != "package main" {
		t.Fatalf("workspace file: %q", r.Body)
	}
	if keys := c2.must(http.StatusOK, "GET", "/v1/ssh-keys", nil).List(); len(keys) != 1 {
		t.Fatalf("ssh keys: %v", keys)
	}
	if out, err := sshRun(t, c2.srv.SSHAddr, "warm", signer, "cat /opt/tool/version"); err != nil || out != "toolchain\n" {
		t.Fatalf("ssh with the saved key: %q %v", out, err)
	}
	if secs := c2.must(http.StatusOK, "GET", "/v1/secrets", nil).List(); len(secs) != 1 || secs[0]["name"] != "TOKEN" {
		t.Fatalf("secrets: %v", secs)
	}
	// The original's containers are untouched by the seeded one's.
	if got := c.sh(warm, "cat /opt/tool/version"); got != "toolchain\n" {
		t.Fatalf("original after the seeded start: %q", got)
	}

	// Changes, then back to the seed.
	c2.sh(warm, "echo scratch > /opt/tool/version && rm /workspace/w.txt")
	c2.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+paused, nil)
	extra := c2.create(map[string]any{"name": "extra"})["id"].(string)
	c2.must(http.StatusOK, "DELETE", "/v1/workspaces/"+ws+"?force=true", nil)
	start := time.Now()
	n, err := c2.srv.ResetToSeed(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("ResetToSeed = %d, %v", n, err)
	}
	t.Logf("reset to a seed of 2 sandboxes: %v (a loaded machine)", time.Since(start))
	if out := c2.sh(warm, "cat /opt/tool/version /workspace/w.txt"); out != "toolchain\nin-workspace\n" {
		t.Fatalf("after the reset to the seed: %q", out)
	}
	if st := c2.must(http.StatusOK, "GET", "/v1/sandboxes/"+paused, nil).Data()["status"]; st != "paused" {
		t.Fatalf("after the reset, the paused one is %v", st)
	}
	c2.must(http.StatusNotFound, "GET", "/v1/sandboxes/"+extra, nil)
	if r := c2.must(http.StatusOK, "GET", "/v1/workspaces/"+ws+"/direct?path=/main.go", nil); string(r.Body) != "package main" {
		t.Fatalf("workspace file after the reset: %q", r.Body)
	}
	if !containerGone(t, extra) {
		t.Errorf("the container of a sandbox made after the seed is left")
	}
	for _, ref := range m.Images {
		if ok, _ := emulatortest.Docker(t).ImagePresent(context.Background(), ref); !ok {
			t.Errorf("the seed's image %s is gone after a reset to it", ref)
		}
	}

	// Another load replaces the seed: the first one's images go.
	file2 := saveState(t, c2.srv)
	raw2, err := os.ReadFile(file2)
	if err != nil {
		t.Fatal(err)
	}
	if r := c2.do("POST", "/_emulator/state", raw2, "Content-Type", "application/x-tar"); r.Status != http.StatusOK {
		t.Fatalf("second load: %d %s", r.Status, r.Body)
	}
	for _, ref := range m.Images {
		if ok, _ := emulatortest.Docker(t).ImagePresent(context.Background(), ref); ok {
			t.Errorf("the replaced seed's image %s is left", ref)
		}
	}
	if out := c2.sh(warm, "cat /opt/tool/version"); out != "toolchain\n" {
		t.Fatalf("after the second load: %q", out)
	}
}
