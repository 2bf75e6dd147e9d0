package sshgw_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/internal/testtool"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// harness is one in-process rtemu and the files an SSH client needs: a
// HOME of its own, a known_hosts holding the gateway's host key, keys.
type harness struct {
	t          *testing.T
	srv        *emulatortest.Server
	dir        string
	host, port string
	hostKey    gossh.PublicKey
	knownHosts string
}

func newHarness(t *testing.T, opts ...emulatortest.Option) *harness {
	t.Helper()
	emulatortest.SkipIfNoDocker(t)
	return startHarness(t, opts...)
}

// newFakeHarness is newHarness on the fake engine (emulatortest.WithFake),
// for tests of the gateway itself (authentication, throttling, pre-auth
// bounds): no Docker needed.
func newFakeHarness(t *testing.T, opts ...emulatortest.Option) *harness {
	t.Helper()
	eng := emulatortest.Fake()
	// The gateway's login script (sshd's part: home, USER, the login shell)
	// is more shell than the fake's interpreter knows; run what it would
	// exec: the command, or for a shell, a cat standing in for it.
	eng.SetExec(func(ctx context.Context, _ string, spec engine.ExecSpec, builtin func(engine.ExecSpec) (int, error)) (int, error) {
		if len(spec.Cmd) >= 4 && spec.Cmd[3] == "rtemu-ssh" {
			cmd := "cat"
			if len(spec.Cmd) == 5 {
				cmd = spec.Cmd[4]
			}
			spec.Cmd = []string{"/bin/sh", "-c", cmd}
			spec.Env = append([]string{"USER=root", "LOGNAME=root"}, spec.Env...)
		}
		return builtin(spec)
	})
	return startHarness(t, append([]emulatortest.Option{emulatortest.WithEngine(eng)}, opts...)...)
}

func startHarness(t *testing.T, opts ...emulatortest.Option) *harness {
	t.Helper()
	testtool.Need(t, "openssh-client", "ssh", "scp", "sftp", "ssh-keygen")
	srv := emulatortest.New(t, opts...)
	h := &harness{t: t, srv: srv, dir: t.TempDir()}
	var err error
	if h.host, h.port, err = net.SplitHostPort(srv.SSHAddr); err != nil {
		t.Fatalf("SSHAddr %q: %v", srv.SSHAddr, err)
	}
	h.hostKey, h.knownHosts = hostKeyOf(t, srv.DataDir, h.dir, h.port)
	return h
}

// hostKeyOf reads the gateway's public host key from the data dir and
// writes a known_hosts file for it.
func hostKeyOf(t *testing.T, dataDir, dir, port string) (gossh.PublicKey, string) {
	t.Helper()
	line, err := os.ReadFile(filepath.Join(dataDir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatalf("host key: %v", err)
	}
	pk, _, _, _, err := gossh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatalf("host key: %v", err)
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte("[127.0.0.1]:"+port+" "+string(line)), 0o600); err != nil {
		t.Fatal(err)
	}
	return pk, kh
}

// api sends one request to the REST API and decodes the envelope.
func (h *harness) api(method, path string, body any) (int, map[string]any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", h.srv.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (h *harness) mustAPI(want int, method, path string, body any) map[string]any {
	h.t.Helper()
	st, out := h.api(method, path, body)
	if st != want {
		h.t.Fatalf("%s %s: status %d, want %d: %v", method, path, st, want, out)
	}
	d, _ := out["data"].(map[string]any)
	return d
}

// sandbox creates a sandbox and waits until it runs; it returns its id.
func (h *harness) sandbox(body map[string]any) string {
	h.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["template"] = "base-ubuntu"
	id := h.mustAPI(http.StatusCreated, "POST", "/v1/sandboxes", body)["id"].(string)
	h.waitStatus(id, "running")
	return id
}

func (h *harness) waitStatus(id, status string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		if st, out := h.api("GET", "/v1/sandboxes/"+id, nil); st == http.StatusOK {
			last, _ = out["data"].(map[string]any)
			if last["status"] == status {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("sandbox %s did not become %s; last %v", id, status, last)
	return nil
}

// sh runs a command through the REST API (not SSH) and returns stdout.
func (h *harness) sh(id, cmd string) string {
	h.t.Helper()
	d := h.mustAPI(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": cmd})
	if d["exitCode"].(float64) != 0 {
		h.t.Fatalf("%q: exit %v, stderr %q", cmd, d["exitCode"], d["stderr"])
	}
	return d["stdout"].(string)
}

// registerKey registers a public key and returns its id.
func (h *harness) registerKey(name string, k *testKey) string {
	h.t.Helper()
	return h.mustAPI(http.StatusCreated, "POST", "/v1/ssh-keys", map[string]any{"name": name, "publicKey": k.authorized})["id"].(string)
}

// testKey is a client key pair, with the private half in a file for ssh -i.
type testKey struct {
	signer     gossh.Signer
	authorized string // "TYPE BASE64 comment"
	file       string
}

func newKey(t *testing.T, kind string) *testKey {
	t.Helper()
	var priv any
	var err error
	switch kind {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "id_"+kind+"-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	auth := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(signer.PublicKey()))) + " test@" + kind
	if err := os.WriteFile(f.Name()+".pub", []byte(auth+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testKey{signer: signer, authorized: auth, file: f.Name()}
}

// dial connects with golang.org/x/crypto/ssh, checking the host key.
func (h *harness) dial(user string, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	return gossh.Dial("tcp", h.srv.SSHAddr, &gossh.ClientConfig{
		User: user, Auth: auth, HostKeyCallback: gossh.FixedHostKey(h.hostKey), Timeout: 20 * time.Second,
	})
}

func (h *harness) mustDial(user string, auth ...gossh.AuthMethod) *gossh.Client {
	h.t.Helper()
	c, err := h.dial(user, auth...)
	if err != nil {
		h.t.Fatalf("ssh %s: %v", user, err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// result is what one command gave a client.
type result struct {
	stdout, stderr string
	code           int
}

// run runs a command on a new session of c.
func run(t *testing.T, c *gossh.Client, cmd string, stdin io.Reader) result {
	t.Helper()
	r, err := runE(c, cmd, stdin)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runE is run for goroutines other than the test's.
func runE(c *gossh.Client, cmd string, stdin io.Reader) (result, error) {
	s, err := c.NewSession()
	if err != nil {
		return result{}, fmt.Errorf("new session: %w", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	err = s.Run(cmd)
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *gossh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitStatus()
	default:
		return r, fmt.Errorf("run %q: %w (stderr %q)", cmd, err, errb.String())
	}
	return r, nil
}

// ssh builds an OpenSSH client command with a HOME, config and known_hosts
// of the test's own, strict host key checking, and no agent.
func (h *harness) ssh(bin string, args ...string) *exec.Cmd {
	portFlag := "-p"
	if bin == "scp" || bin == "sftp" {
		portFlag = "-P"
	}
	base := []string{"-F", "/dev/null", "-o", "UserKnownHostsFile=" + h.knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20", portFlag, h.port}
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+h.dir, "SSH_AUTH_SOCK=")
	return cmd
}

// withKey is the OpenSSH arguments for logging in with a key only.
func withKey(k *testKey) []string {
	return []string{"-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-i", k.file}
}

// sshpass wraps an OpenSSH command to log in with a password only; a test
// that calls it first calls needSSHPass.
func (h *harness) sshpass(password, bin string, args ...string) *exec.Cmd {
	inner := h.ssh(bin, append([]string{"-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
		"-o", "NumberOfPasswordPrompts=1"}, args...)...)
	cmd := exec.Command("sshpass", append([]string{"-e", inner.Path}, inner.Args[1:]...)...)
	cmd.Env = append(inner.Env, "SSHPASS="+password)
	return cmd
}

// needSSHPass skips the test where sshpass is not installed.
func needSSHPass(t *testing.T) {
	t.Helper()
	testtool.Need(t, "sshpass", "sshpass")
}

// openssh runs an OpenSSH command and returns its outputs and exit code.
func openssh(t *testing.T, cmd *exec.Cmd, stdin io.Reader) result {
	t.Helper()
	r, err := opensshE(cmd, stdin)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// opensshE is openssh for goroutines other than the test's.
func opensshE(cmd *exec.Cmd, stdin io.Reader) (result, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("%v: %w", cmd.Args, err)
	}
	return r, nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, d, cond, "timed out waiting for %s", what)
}

func target(user string, h *harness) string { return fmt.Sprintf("%s@%s", user, h.host) }
