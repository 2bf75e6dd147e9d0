package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/enginetest"
	"github.com/rtemu-dev/rtemu/engine/kubernetes"
	"github.com/rtemu-dev/rtemu/internal/testkube"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// The engine speaks the contract.
var _ engine.Engine = (*kubernetes.Engine)(nil)

// testNamespace holds the tests' pods.
const testNamespace = "rtemu-enginetest"

// testImage is the busybox image the test cluster's script builds offline
// from the static busybox and imports into the cluster's containerd.
const testImage = "docker.io/library/busybox:1.35"

// cluster is the test cluster: its client configuration, and whether it
// runs on this host (so hostPath volumes see this host's folders).
type cluster struct {
	rc    *rest.Config
	local bool
	image string
}

// needCluster skips the test unless a cluster answers; it says how to get
// one.
func needCluster(t *testing.T) cluster {
	t.Helper()
	_, rc, cs := testkube.Cluster(t)
	testkube.Namespace(t, cs, testNamespace)
	c := cluster{rc: rc, image: testImage}
	if img := os.Getenv("RTEMU_TEST_K8S_IMAGE"); img != "" {
		c.image = img
	}
	if u, err := url.Parse(rc.Host); err == nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost") {
		c.local = true
	}
	return c
}

// newEngine makes an engine for the test namespace. Requests are a
// hundredth of the limits: the suite's parallel cases fit a 2-CPU node.
func (c cluster) newEngine(t *testing.T) *kubernetes.Engine {
	t.Helper()
	return c.newEngineWith(t, kubernetes.Config{})
}

// newEngineWith is newEngine with more of the config (NoAgent).
func (c cluster) newEngineWith(t *testing.T, more kubernetes.Config) *kubernetes.Engine {
	t.Helper()
	cfg := more
	cfg.REST, cfg.Namespace, cfg.PullPolicy, cfg.RequestRatio, cfg.HostFolders = c.rc, testNamespace, corev1.PullNever, 0.01, c.local
	e, err := kubernetes.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// waitImage waits until the cluster's node reports the test image (the
// kubelet refreshes its image list about every 30 s).
func (c cluster) waitImage(t *testing.T, e *kubernetes.Engine) {
	t.Helper()
	testwait.Until(t, 90*time.Second, func() bool {
		ok, err := e.ImagePresent(context.Background(), c.image)
		return err == nil && ok
	}, "no node of the cluster has the image %s (scripts/k8s-test-cluster/up.sh imports it)", c.image)
}

// The Kubernetes engine passes the contract's conformance suite on a real
// cluster, as the Docker engine and the fake do: with the exec agent in
// its pods, and with every command an API-server exec (the way a TTY, or
// a pod the agent cannot run in, takes).
func TestConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  kubernetes.Config
	}{
		{"exec agent", kubernetes.Config{}},
		{"API-server exec", kubernetes.Config{NoAgent: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conformance(t, tt.cfg)
		})
	}
}

func conformance(t *testing.T, cfg kubernetes.Config) {
	c := needCluster(t)
	c.waitImage(t, c.newEngine(t))
	unmodelled := map[string]string{}
	unmodelled["Snapshot"] = "Snapshot: false (no commit of a container in the Kubernetes API)"
	unmodelled["SnapshotFiles"] = unmodelled["Snapshot"]
	unmodelled["SnapshotWithoutBase"] = unmodelled["Snapshot"]
	if !c.local {
		unmodelled["SharesFolder"] = "the cluster's nodes are not this host: they do not see its folders"
	}
	enginetest.Run(t, enginetest.Harness{
		New:   func(t *testing.T) engine.Engine { return c.newEngineWith(t, cfg) },
		Image: c.image,
		Serve: func(t *testing.T, e engine.Engine, name string, port int) {
			// busybox nc in the background (TestDialLoopback has a server
			// bound to 127.0.0.1); then wait until the kernel lists the port
			// as listening.
			cmd := fmt.Sprintf("nc -ll -p %d -e cat </dev/null >/dev/null 2>&1 &", port)
			if code, err := e.Exec(context.Background(), name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", cmd}}); err != nil || code != 0 {
				t.Fatalf("start the echo server: code %d, %v", code, err)
			}
			listening := fmt.Sprintf("grep -q ':%04X [0-9A-F:]* 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null", port)
			testwait.Until(t, 30*time.Second, func() bool {
				code, err := e.Exec(context.Background(), name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", listening}})
				return err == nil && code == 0
			}, "the echo server on port %d does not listen", port)
		},
		Unmodelled: unmodelled,
		Timeout:    60 * time.Second,
	})
}

// An API server that does not answer is ErrUnavailable.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	e, err := kubernetes.New(kubernetes.Config{REST: &rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.Ping(ctx); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
	if _, err := e.Inspect(ctx, "x"); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Inspect = %v, want ErrUnavailable", err)
	}
	if _, err := e.List(ctx, nil); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("List = %v, want ErrUnavailable", err)
	}
}
