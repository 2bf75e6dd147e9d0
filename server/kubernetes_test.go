package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/internal/testkube"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// e2eNamespace holds the pods of the end-to-end test on a cluster.
const e2eNamespace = "rtemu-e2e"

// kubeconfigForTest is the test cluster's kubeconfig and a client, with
// the test namespace made; or a skip saying how to start the cluster.
func kubeconfigForTest(t *testing.T) (string, k8s.Interface) {
	t.Helper()
	path, _, cs := testkube.Cluster(t)
	testkube.Namespace(t, cs, e2eNamespace)
	return path, cs
}

// api is a JSON client of rtemu's REST API, as the SDK talks to it.
type api struct {
	t    *testing.T
	base string
}

func (a api) call(method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, in)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", "rt_test_0123456789abcdefghijklmnopqrstuv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(raw, &env)
	if env.Data == nil {
		env.Data = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, env.Data
}

func (a api) must(want int, method, path string, body any) map[string]any {
	a.t.Helper()
	st, out := a.call(method, path, body)
	if st != want {
		a.t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
	}
	return out
}

func (a api) waitStatus(id, want string) {
	a.t.Helper()
	testwait.Check(a.t, 90*time.Second, func() error {
		if _, sb := a.call("GET", "/v1/sandboxes/"+id, nil); sb["status"] != want {
			return fmt.Errorf("sandbox %s never %s: %v", id, want, sb)
		}
		return nil
	})
}

func (a api) exec(id, cmd string) (string, int) {
	a.t.Helper()
	out := a.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": cmd})
	code, _ := out["exitCode"].(float64)
	stdout, _ := out["stdout"].(string)
	return stdout, int(code)
}

// The behaviours a user of the hosted API relies on, end to end through
// rtemu's REST API and SSH gateway with every sandbox a pod of a real
// cluster: create → running, exec with its exit code, a dev URL to a server
// bound to 127.0.0.1 in the pod, an SSH session, pause and resume (the
// sandbox's processes kept), idle pause, reconcile after rtemu restarts on
// the same data dir, a pod deleted behind rtemu's back, and destroy
// removing the pod.
func TestKubernetesEndToEnd(t *testing.T) {
	kubeconfig, cs := kubeconfigForTest(t)
	t.Parallel()
	ctx := context.Background()
	image := os.Getenv("RTEMU_TEST_K8S_IMAGE")
	if image == "" {
		image = "docker.io/library/busybox:1.35" // scripts/k8s-test-cluster imports it
	}
	cfg := config.Config{Engine: "kubernetes", Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Kube:      config.Kube{Kubeconfig: kubeconfig, Namespace: e2eNamespace, PullPolicy: "Never"},
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: image}}, DevURLListenersOff: false}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(ctx, cfg, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			srv.RemoveContainersOnClose()
			_ = srv.Close(context.Background())
		}
	})
	a := api{t: t, base: srv.URL}

	sb := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "name": "k8s-e2e",
		"rootPassword": "correct horse"})
	id, _ := sb["id"].(string)
	start := time.Now()
	a.waitStatus(id, "running")
	t.Logf("create → running through rtemu: %v", time.Since(start).Round(time.Millisecond))
	pods, err := cs.CoreV1().Pods(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of sandbox %s: %v, %v; want one", id, pods, err)
	}

	if out, code := a.exec(id, "echo hello from $(hostname); exit 3"); code != 3 || !strings.Contains(out, "hello from") {
		t.Fatalf("exec: %q exit %d", out, code)
	}

	// A dev URL reaches a server that listens on the pod's loopback only.
	if _, code := a.exec(id, "mkdir -p /www && echo dev-url-ok > /www/index.html && httpd -p 127.0.0.1:8080 -h /www"); code != 0 {
		t.Fatalf("httpd: exit %d", code)
	}
	u := a.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/url?port=8080", nil)
	devURL, _ := u["url"].(string)
	var body string
	testwait.Check(t, 30*time.Second, func() error {
		resp, err := http.Get(devURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if body = string(b); resp.StatusCode != 200 {
			return fmt.Errorf("dev URL %s: %d %q", devURL, resp.StatusCode, body)
		}
		return nil
	})
	if strings.TrimSpace(body) != "dev-url-ok" {
		t.Fatalf("dev URL %s answered %q", devURL, body)
	}

	// An SSH session through the gateway, with the sandbox's password.
	sshc, err := gossh.Dial("tcp", srv.SSHAddr, &gossh.ClientConfig{User: "k8s-e2e",
		Auth: []gossh.AuthMethod{gossh.Password("correct horse")}, HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	sess, err := sshc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	got, err := sess.CombinedOutput("cat /www/index.html; exit 4")
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 4 || strings.TrimSpace(string(got)) != "dev-url-ok" {
		t.Fatalf("ssh command: %q, %v; want the file and exit 4", got, err)
	}
	sshc.Close()

	// Pause keeps the sandbox's processes: the server started before it
	// still answers after the resume.
	a.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	a.waitStatus(id, "paused")
	a.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/resume", nil)
	a.waitStatus(id, "running")
	if out, code := a.exec(id, "wget -q -O - http://127.0.0.1:8080/"); code != 0 || strings.TrimSpace(out) != "dev-url-ok" {
		t.Fatalf("the server after pause and resume: %q exit %d", out, code)
	}

	// The idle timeout pauses it (made to fire now), and exec resumes it.
	a.must(http.StatusOK, "POST", "/_emulator/sandboxes/"+id+"/expire-idle", nil)
	a.waitStatus(id, "paused")
	a.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/resume", nil)
	a.waitStatus(id, "running")

	// rtemu stops and starts again on the same data dir: the sandbox is
	// still there and running, and takes commands.
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	srv2, err := server.Start(ctx, cfg, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv2.RemoveContainersOnClose()
		_ = srv2.Close(context.Background())
	})
	a = api{t: t, base: srv2.URL}
	a.waitStatus(id, "running")
	if out, code := a.exec(id, "cat /www/index.html"); code != 0 || strings.TrimSpace(out) != "dev-url-ok" {
		t.Fatalf("exec after rtemu's restart: %q exit %d", out, code)
	}

	// A pod deleted behind rtemu's back (an eviction, kubectl delete)
	// marks its sandbox error.
	gone := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	goneID, _ := gone["id"].(string)
	a.waitStatus(goneID, "running")
	if err := cs.CoreV1().Pods(e2eNamespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + goneID}); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(goneID, "error")
	a.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+goneID, nil)

	// Destroy removes the pod.
	a.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	testwait.Until(t, 60*time.Second, func() bool {
		pods, err := cs.CoreV1().Pods(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
		return err == nil && len(pods.Items) == 0
	}, "sandbox %s's pod outlived its destroy", id)
	if st, _ := a.call("DELETE", "/v1/sandboxes/"+id, nil); st != http.StatusNotFound {
		t.Fatalf("a second destroy: %d, want 404", st)
	}
}

// doctor on a real cluster says where it is, its nodes, that rtemu may do
// what it needs, what the engine can do there, and whether the template's
// image is on a node.
func TestKubernetesDoctor(t *testing.T) {
	kubeconfig, _ := kubeconfigForTest(t)
	t.Parallel()
	cfg := config.Config{Engine: "kubernetes", Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0",
		Kube:      config.Kube{Kubeconfig: kubeconfig, Namespace: e2eNamespace, PullPolicy: "Never"},
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: "docker.io/library/busybox:1.35"}, {Name: "absent", Image: "rtemu-test/not-on-any-node:1"}}}
	var out bytes.Buffer
	ok := server.Doctor(context.Background(), cfg, &out)
	for _, want := range []string{"ok   kubernetes: API server https://", "ok   kubernetes: namespace " + e2eNamespace,
		"node(s) ready", "ok   kubernetes: rtemu may do all it needs", "info capabilities: pause keeping memory yes",
		"info network isolation:", "warn template absent: no node reports image rtemu-test/not-on-any-node:1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor lacks %q:\n%s", want, out.String())
		}
	}
	if !ok {
		t.Errorf("doctor failed on a working cluster:\n%s", out.String())
	}
}
