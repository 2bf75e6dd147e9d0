package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
	"github.com/rtemu-dev/rtemu/store"
)

// e2eImage is the image the end-to-end tests' sandboxes run on the test
// cluster (scripts/k8s-test-cluster imports it), or RTEMU_TEST_K8S_IMAGE.
func e2eImage() string {
	if img := os.Getenv("RTEMU_TEST_K8S_IMAGE"); img != "" {
		return img
	}
	return "docker.io/library/busybox:1.35"
}

// small are resources that let many sandboxes share the test cluster's one
// node (a sandbox requests a tenth of its limits).
var small = map[string]any{"vcpus": 1, "memory": "128MB"}

// kubeServer starts rtemu in-process on the cluster of kubeconfig, in the
// end-to-end namespace, and stops it (removing its pods) when the test
// ends.
func kubeServer(t *testing.T, kubeconfig string, edit func(*config.Config)) (*server.Server, api) {
	t.Helper()
	cfg := config.Config{Engine: "kubernetes", Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Kube:      config.Kube{Kubeconfig: kubeconfig, Namespace: e2eNamespace, PullPolicy: "Never"},
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: e2eImage()}}}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.RemoveContainersOnClose()
		_ = srv.Close(context.Background())
	})
	return srv, api{t: t, base: srv.URL}
}

// list is GET /v1/sandboxes's sandboxes.
func (a api) list() []map[string]any {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.base+"/v1/sandboxes", nil)
	req.Header.Set("X-API-Key", "rt_test_0123456789abcdefghijklmnopqrstuv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		a.t.Fatalf("list: %d %v", resp.StatusCode, err)
	}
	return out.Data
}

// podsOf lists the pods of a sandbox.
func podsOf(t *testing.T, cs k8s.Interface, id string) []string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(e2eNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names
}

// tcpProxy relays TCP connections to a target (the API server) until it is
// cut: then its port refuses connections and those it relayed are closed,
// as when the API server is gone; restore listens on the same port again.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, target: target, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
}

func (p *tcpProxy) relay(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// cut refuses new connections and closes the open ones.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore listens on the proxy's port again.
func (p *tcpProxy) restore() {
	p.t.Helper()
	var ln net.Listener
	testwait.Check(p.t, 10*time.Second, func() (err error) {
		ln, err = net.Listen("tcp", p.addr)
		return err
	})
	p.serve(ln)
}

// proxiedKubeconfig writes a copy of the kubeconfig whose clusters are
// reached through the proxy (the serving certificate names 127.0.0.1, not a
// port, so TLS still verifies).
func proxiedKubeconfig(t *testing.T, path string, proxy *tcpProxy) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kc.Clusters {
		c.Server = "https://" + proxy.addr
	}
	out := filepath.Join(t.TempDir(), "proxied.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// apiServerAddr is the host:port of the kubeconfig's API server.
func apiServerAddr(t *testing.T, path string) string {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(rc.Host, "https://"), "http://")
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "443")
	}
	return host
}

// The API server becomes unreachable under a running rtemu (a real TCP
// proxy between them is cut): every call that needs the engine answers 503
// engine_unavailable, never 500, and changes nothing; reads of rtemu's own
// records still work. When the API server is reachable again rtemu
// recovers by itself: the sandbox whose pod went on running is still
// running and takes commands, and new sandboxes start.
func TestKubernetesAPIServerOutage(t *testing.T) {
	kubeconfig, cs := kubeconfigForTest(t)
	t.Parallel()
	proxy := startProxy(t, apiServerAddr(t, kubeconfig))
	_, a := kubeServer(t, proxiedKubeconfig(t, kubeconfig, proxy), nil)

	sb := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "resources": small})
	id := sb["id"].(string)
	a.waitStatus(id, "running")
	if out, code := a.exec(id, "echo before > /tmp/mark; echo up"); code != 0 || out != "up\n" {
		t.Fatalf("exec before the outage: %q exit %d", out, code)
	}

	proxy.cut()
	calls := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/sandboxes/" + id + "/exec", map[string]any{"command": "true"}},
		{"POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "resources": small}},
		{"POST", "/v1/sandboxes/" + id + "/pause", nil},
		{"GET", "/v1/sandboxes/" + id + "/stats", nil},
		{"DELETE", "/v1/sandboxes/" + id, nil},
	}
	for _, c := range calls {
		st, out := a.call(c.method, c.path, c.body)
		raw := fmt.Sprint(out)
		if st != http.StatusServiceUnavailable || !strings.Contains(raw, "engine_unavailable") {
			t.Errorf("%s %s with the API server unreachable: %d %s, want 503 engine_unavailable", c.method, c.path, st, raw)
		}
	}
	// Reads of rtemu's records need no engine.
	if st, got := a.call("GET", "/v1/sandboxes/"+id, nil); st != http.StatusOK || got["id"] != id {
		t.Errorf("GET the sandbox during the outage: %d %v", st, got)
	}
	// Nothing changed: no second sandbox, the first neither deleted nor
	// paused.
	if list := a.list(); len(list) != 1 || list[0]["id"] != id || list[0]["status"] != "running" {
		t.Errorf("list during the outage: %v, want only %s, running", list, id)
	}

	proxy.restore()
	// rtemu recovers by itself: no call of the test's makes it.
	testwait.Check(t, 90*time.Second, func() error {
		st, out := a.call("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "cat /tmp/mark"})
		if st != http.StatusOK || out["stdout"] != "before\n" {
			return fmt.Errorf("exec after the API server came back: %d %v", st, out)
		}
		return nil
	})
	if _, got := a.call("GET", "/v1/sandboxes/"+id, nil); got["status"] != "running" {
		t.Errorf("after the outage the sandbox is %v, want running (its pod went on running)", got["status"])
	}
	sb2 := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "resources": small})
	id2 := sb2["id"].(string)
	a.waitStatus(id2, "running")
	if out, code := a.exec(id2, "echo new"); code != 0 || out != "new\n" {
		t.Fatalf("exec in a sandbox made after the outage: %q exit %d", out, code)
	}
	a.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	testwait.Until(t, 60*time.Second, func() bool { return len(podsOf(t, cs, id)) == 0 }, "sandbox %s's pod outlived its destroy", id)
}

// A pod evicted behind rtemu's back (the Eviction API, as kubectl drain
// does) marks its sandbox error; it can then be deleted.
func TestKubernetesPodEvicted(t *testing.T) {
	kubeconfig, cs := kubeconfigForTest(t)
	t.Parallel()
	_, a := kubeServer(t, kubeconfig, nil)
	sb := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "resources": small})
	id := sb["id"].(string)
	a.waitStatus(id, "running")
	pods := podsOf(t, cs, id)
	if len(pods) != 1 {
		t.Fatalf("pods of %s: %v, want one", id, pods)
	}
	if err := cs.PolicyV1().Evictions(e2eNamespace).Evict(context.Background(), &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pods[0], Namespace: e2eNamespace}}); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(id, "error")
	if st, out := a.call("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "true"}); st == http.StatusOK {
		t.Errorf("exec in a sandbox whose pod was evicted: %d %v", st, out)
	}
	a.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	testwait.Until(t, 60*time.Second, func() bool { return len(podsOf(t, cs, id)) == 0 }, "the evicted pod of %s stayed", id)
}

// rtemu killed with SIGKILL while several creates are under way, then
// started again on the same data dir: every acknowledged sandbox settles,
// every pod of the instance belongs to a sandbox rtemu lists (none that no
// record owns), and every running sandbox has its pod.
func TestKubernetesKillDuringCreates(t *testing.T) {
	kubeconfig, cs := kubeconfigForTest(t)
	t.Parallel()
	for _, killAfter := range []time.Duration{400 * time.Millisecond, 1500 * time.Millisecond} {
		t.Run(fmt.Sprintf("kill after %v", killAfter), func(t *testing.T) {
			dataDir := t.TempDir()
			args := []string{rtemuBinary(t), "serve", "--addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0", "--data-dir", dataDir,
				"--engine", "kubernetes", "--kubeconfig", kubeconfig, "--kube-namespace", e2eNamespace, "--kube-pull-policy", "Never",
				"--template", "base-ubuntu=" + e2eImage()}
			p := startRtemuArgs(t, args)
			instance := instanceOf(t, dataDir)
			instancePods := func() map[string]string {
				pods, err := cs.CoreV1().Pods(e2eNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.LabelInstance + "=" + instance})
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]string{}
				for _, pod := range pods.Items {
					out[pod.Name] = pod.Labels[sandbox.LabelSandbox]
				}
				return out
			}
			t.Cleanup(func() {
				_ = cs.CoreV1().Pods(e2eNamespace).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: new(int64)},
					metav1.ListOptions{LabelSelector: sandbox.LabelInstance + "=" + instance})
			})

			var (
				mu    sync.Mutex
				acked []string
				wg    sync.WaitGroup
			)
			stop := make(chan struct{})
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < 4; i++ {
						select {
						case <-stop:
							return
						default:
						}
						code, d := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu",
							"name": fmt.Sprintf("k-w%d-%d", w, i), "resources": small})
						if code != http.StatusCreated {
							return
						}
						mu.Lock()
						acked = append(acked, d["id"].(string))
						mu.Unlock()
					}
				}(w)
			}
			time.Sleep(killAfter) // the kill lands while creates are under way, wherever they are
			p.kill()
			close(stop)
			wg.Wait()
			podsAtKill := len(instancePods())

			p = startRtemuArgs(t, args)
			if len(acked) == 0 {
				t.Fatal("no create was acknowledged before the kill")
			}
			settled := map[string]bool{"running": true, "failed": true, "error": true, "destroyed": true}
			for _, id := range acked {
				testwait.Check(t, 120*time.Second, func() error {
					if st := p.status(id); !settled[st] {
						return fmt.Errorf("acknowledged sandbox %s is %q after the restart; rtemu log:\n%s", id, st, p.log)
					}
					return nil
				})
			}
			// The records and the cluster agree: no pod without a live
			// record, no running record without its pod.
			var disagree []string
			testwait.Check(t, 90*time.Second, func() error {
				disagree = nil
				_, list := p.list()
				live := map[string]string{}
				for _, sb := range list {
					live[sb["id"].(string)] = sb["status"].(string)
				}
				owned := map[string]bool{}
				for pod, id := range instancePods() {
					owned[id] = true
					if st, ok := live[id]; !ok || st == "destroyed" {
						disagree = append(disagree, fmt.Sprintf("pod %s (sandbox %q) has no live record", pod, id))
					}
				}
				for id, st := range live {
					if st == "running" && !owned[id] {
						disagree = append(disagree, fmt.Sprintf("%s is running but has no pod", id))
					}
				}
				if len(disagree) > 0 {
					return fmt.Errorf("after the restart: %s", strings.Join(disagree, "; "))
				}
				return nil
			})
			running := 0
			for _, id := range acked {
				switch st := p.status(id); st {
				case "running":
					running++
				case "error", "failed":
					_, d := p.do("GET", "/v1/sandboxes/"+id, nil)
					t.Errorf("%s is %s after the restart (nothing happened behind rtemu's back): %v", id, st, d["error"])
				}
			}
			t.Logf("%d creates acknowledged before the kill, %d pods at the kill; after the restart %d running, every pod owned", len(acked), podsAtKill, running)
		})
	}
}

// instanceOf is the instance id of the rtemu whose data dir this is.
func instanceOf(t *testing.T, dataDir string) string {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dataDir, "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return st.InstanceID()
}
