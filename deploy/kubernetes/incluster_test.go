// Package deploy holds the test of rtemu.yaml: rtemu itself running in a
// Kubernetes cluster with --engine kubernetes.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rtemu-dev/rtemu/engine/kubernetes"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

const (
	how          = "start the test cluster (as root): export RTEMU_TEST_KUBECONFIG=$(scripts/k8s-test-cluster/up.sh | tail -1)"
	sandboxImage = "docker.io/library/busybox:1.35" // scripts/k8s-test-cluster imports it
	apiKey       = "rt_test_0123456789abcdefghijklmnopqrstuv"
	// apiServerName is a name the test cluster's serving certificate
	// holds; the rtemu pod resolves it to the node (hostAliases).
	apiServerName = "kubernetes.default.svc"
)

// cluster is the test cluster's client, or a skip saying how to get one.
func cluster(t *testing.T) (*rest.Config, k8s.Interface) {
	t.Helper()
	path := os.Getenv("RTEMU_TEST_KUBECONFIG")
	if path == "" {
		t.Skip("no Kubernetes cluster (RTEMU_TEST_KUBECONFIG unset); " + how)
	}
	rc, err := kubernetes.LoadConfig(path)
	if err != nil {
		t.Skipf("no Kubernetes cluster (%v); %s", err, how)
	}
	rc.Timeout = 10 * time.Second
	cs, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		t.Skipf("the Kubernetes API server at %s does not answer (%v); %s", rc.Host, err, how)
	}
	return rc, cs
}

// containerdSocket is the test cluster's containerd (scripts/k8s-test-cluster/config.sh).
func containerdSocket() string {
	dir := os.Getenv("K8S_CONTAINERD_STATE")
	if dir == "" {
		dir = "/run/k8s-containerd"
	}
	return filepath.Join(dir, "containerd.sock")
}

// image builds rtemu statically, makes its image from the repository's
// Dockerfile and imports it into the cluster's containerd, once per test
// binary; it answers the image's name.
var image = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rtemu-incluster-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	run := func(stdin io.Reader, name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		cmd.Stdin = stdin
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
		return out, nil
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "rtemu"), ".")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build rtemu: %v: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "rtemu"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	tag := "rtemu-test/rtemu:incluster-" + hex.EncodeToString(sum[:6])
	full := "docker.io/" + tag
	ctr := []string{"--address", containerdSocket(), "-n", "k8s.io"}
	if out, err := run(nil, "ctr", append(ctr, "images", "ls", "-q")...); err == nil {
		for _, name := range strings.Fields(string(out)) {
			if name == full {
				return tag, nil // imported by an earlier run
			}
			if strings.HasPrefix(name, "docker.io/rtemu-test/rtemu:incluster-") {
				_, _ = run(nil, "ctr", append(ctr, "images", "rm", name)...) // an older build's
			}
		}
	}
	if _, err := run(nil, "docker", "build", "-q", "-t", tag, "-f", "../../Dockerfile", dir); err != nil {
		return "", err
	}
	defer func() { _, _ = run(nil, "docker", "rmi", tag) }()
	save := exec.Command("docker", "save", tag)
	tar, err := save.Output()
	if err != nil {
		return "", fmt.Errorf("docker save %s: %v", tag, err)
	}
	if _, err := run(bytes.NewReader(tar), "ctr", append(ctr, "images", "import", "-")...); err != nil {
		return "", err
	}
	return tag, nil
})

// relay listens on the node's address and passes every connection to the
// API server: the test cluster's API server listens on 127.0.0.1 only, and
// has no kube-proxy to make its `kubernetes` Service reach it from a pod.
// A real cluster needs none of this.
func relay(t *testing.T, nodeIP, apiServer string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Skipf("cannot listen on the cluster node's address %s (%v); %s", nodeIP, err, how)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", apiServer, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// manifests reads rtemu.yaml.
func manifests(t *testing.T) []any {
	t.Helper()
	f, err := os.Open("rtemu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("rtemu.yaml: %v", err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

// rtemu.yaml applied to a fresh namespace of the test cluster runs rtemu
// with the Kubernetes engine on its service account: its API answers
// through a port-forward, and a sandbox made through it is a pod of that
// namespace that runs a command.
func TestInCluster(t *testing.T) {
	rc, cs := cluster(t)
	for _, c := range []string{"docker", "ctr"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s to build and import rtemu's image", c)
		}
	}
	if _, err := os.Stat(containerdSocket()); err != nil {
		t.Skipf("no test cluster containerd socket (%v); %s", err, how)
	}
	nodeIP := os.Getenv("RTEMU_TEST_K8S_NODE_IP")
	if nodeIP == "" {
		nodeIP = "10.244.77.1" // scripts/k8s-test-cluster/config.sh NODE_IP
	}
	apiURL, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	port := relay(t, nodeIP, apiURL.Host)
	img, err := image()
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "rtemu-incluster-" + hex.EncodeToString(b)
	pvName, nodesName := ns+"-data", ns+"-nodes"
	t.Cleanup(func() {
		ctx := context.Background()
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, nodesName, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoles().Delete(ctx, nodesName, metav1.DeleteOptions{})
		_ = cs.CoreV1().PersistentVolumes().Delete(ctx, pvName, metav1.DeleteOptions{})
	})

	// The data dir's volume: the test cluster has no provisioner, so a
	// hostPath volume made for the claim.
	dataDir := t.TempDir()
	if err := os.Chmod(dataDir, 0o777); err != nil {
		t.Fatal(err)
	}
	empty := ""
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dataDir}},
		ClaimRef:               &corev1.ObjectReference{Namespace: ns, Name: "rtemu-data"},
		StorageClassName:       empty,
	}}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	kinds := map[string]int{}
	for _, obj := range manifests(t) {
		var err error
		switch o := obj.(type) {
		case *corev1.Namespace:
			o.Name = ns
			_, err = cs.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
			if err == nil {
				testwait.Until(t, 30*time.Second, func() bool {
					_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
					return err == nil
				}, "namespace %s has no default service account", ns)
			}
		case *corev1.ServiceAccount:
			o.Namespace = ns
			_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			o.Namespace = ns
			_, err = cs.RbacV1().Roles(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			o.Namespace = ns
			for i := range o.Subjects {
				o.Subjects[i].Namespace = ns
			}
			_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			o.Name = nodesName
			_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			o.Name, o.RoleRef.Name = nodesName, nodesName
			for i := range o.Subjects {
				o.Subjects[i].Namespace = ns
			}
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.PersistentVolumeClaim:
			o.Namespace = ns
			o.Spec.StorageClassName, o.Spec.VolumeName = &empty, pvName
			_, err = cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			o.Namespace = ns
			spec := &o.Spec.Template.Spec
			c := &spec.Containers[0]
			c.Image, c.ImagePullPolicy = img, corev1.PullNever
			setEnv(c, "RTEMU_TEMPLATES", "base-ubuntu="+sandboxImage)
			setEnv(c, "RTEMU_KUBE_PULL_POLICY", "Never")
			// The test cluster's API server, by a name its certificate
			// holds, through the relay (a real cluster: the Service).
			setEnv(c, "KUBERNETES_SERVICE_HOST", apiServerName)
			setEnv(c, "KUBERNETES_SERVICE_PORT", strconv.Itoa(port))
			spec.HostAliases = append(spec.HostAliases, corev1.HostAlias{IP: nodeIP, Hostnames: []string{apiServerName}})
			_, err = cs.AppsV1().Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			o.Namespace = ns
			_, err = cs.CoreV1().Services(ns).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("rtemu.yaml: %T not applied by this test", obj)
		}
		if err != nil {
			t.Fatalf("apply %T: %v", obj, err)
		}
		kinds[fmt.Sprintf("%T", obj)]++
	}
	if len(kinds) != 9 {
		t.Fatalf("rtemu.yaml has %v; want a Namespace, ServiceAccount, Role, RoleBinding, ClusterRole, ClusterRoleBinding, PersistentVolumeClaim, Deployment and Service", kinds)
	}

	// The Deployment ready: rtemu answers its readiness probe.
	start := time.Now()
	var pod string
	testwait.Check(t, 3*time.Minute, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "rtemu", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=rtemu"})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 1 || len(pods.Items) != 1 {
			return fmt.Errorf("deployment rtemu not ready: %+v; pods: %s", d.Status, podStates(pods.Items))
		}
		pod = pods.Items[0].Name
		return nil
	})
	t.Logf("deployment ready in %v", time.Since(start).Round(time.Millisecond))

	t.Cleanup(func() {
		if t.Failed() {
			logs, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).Do(context.Background()).Raw()
			t.Logf("rtemu's log (%v):\n%s", err, logs)
		}
	})
	// The Role and ClusterRole grant every verb the engine needs: rtemu
	// doctor in the pod asks the API server (access reviews).
	doctor := podExec(t, rc, ns, pod, "/rtemu", "doctor")
	if want := "rtemu may do all it needs in " + ns; !strings.Contains(doctor, want) {
		t.Fatalf("rtemu doctor in the pod does not say %q:\n%s", want, doctor)
	}

	base := forward(t, rc, ns, pod, 7070)
	a := api{t: t, base: base}
	// Health asks the engine (the API server) each time: a loaded
	// machine may make one ask slow.
	testwait.Check(t, 30*time.Second, func() error {
		if st, out := a.call("GET", "/health", nil); st != http.StatusOK {
			return fmt.Errorf("GET /health through the port-forward: %d %v", st, out)
		}
		return nil
	})

	sb := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "name": "in-cluster"})
	id, _ := sb["id"].(string)
	testwait.Check(t, 90*time.Second, func() error {
		if _, sb := a.call("GET", "/v1/sandboxes/"+id, nil); sb["status"] != "running" {
			return fmt.Errorf("sandbox %s never running: %v", id, sb)
		}
		return nil
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of sandbox %s in %s: %v, %v; want one", id, ns, pods, err)
	}
	out := a.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "echo in-cluster-ok; exit 3"})
	if code, _ := out["exitCode"].(float64); code != 3 || strings.TrimSpace(fmt.Sprint(out["stdout"])) != "in-cluster-ok" {
		t.Fatalf("exec: %v; want stdout in-cluster-ok, exit 3", out)
	}
	a.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	testwait.Check(t, 60*time.Second, func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
		if err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("sandbox %s deleted, its pod still there: %s", id, podStates(pods.Items))
		}
		return nil
	})

	// rtemu's state is on the claim's volume.
	if entries, err := os.ReadDir(dataDir); err != nil || len(entries) == 0 {
		t.Fatalf("rtemu wrote nothing to its data dir's volume %s: %v", dataDir, err)
	}
}

func podStates(pods []corev1.Pod) string {
	var s []string
	for _, p := range pods {
		st := string(p.Status.Phase)
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil {
				st += " " + w.Reason + ": " + w.Message
			}
			if x := c.State.Terminated; x != nil {
				st += fmt.Sprintf(" exited %d %s", x.ExitCode, x.Message)
			}
		}
		s = append(s, p.Name+" "+st)
	}
	return strings.Join(s, "; ")
}

// podExec runs a command in the pod's container and answers its output
// (stdout and stderr; its exit status is not asked for).
func podExec(t *testing.T, rc *rest.Config, ns, pod string, command ...string) string {
	t.Helper()
	u := k8s.NewForConfigOrDie(rc).CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
	spdyEx, err := remotecommand.NewSPDYExecutor(rc, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	wsEx, err := remotecommand.NewWebSocketExecutor(rc, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	ex, err := remotecommand.NewFallbackExecutor(wsEx, spdyEx, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	out := stdout.String() + stderr.String()
	var exit utilexec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("exec %v in %s/%s: %v\n%s", command, ns, pod, err, out)
	}
	if err != nil {
		out += "\n(" + err.Error() + ")"
	}
	return out
}

// forward port-forwards a local port to the pod's port, as `kubectl
// port-forward` does, and answers the local base URL.
func forward(t *testing.T, rc *rest.Config, ns, pod string, port int) string {
	t.Helper()
	tr, up, err := spdy.RoundTripperFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	u := k8s.NewForConfigOrDie(rc).CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(up, &http.Client{Transport: tr}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	t.Cleanup(func() { close(stop); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward to %s/%s: %v", ns, pod, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("port-forward to %s/%s: not ready in 30 s", ns, pod)
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("port-forward ports: %v %v", ports, err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local)
}

// api is a JSON client of rtemu's REST API.
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, in)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", apiKey)
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
