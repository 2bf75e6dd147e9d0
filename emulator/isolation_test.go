package emulator_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	dockerclient "github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// reach says whether sandbox from fetches a page from target within three
// seconds (busybox wget; its -T crashes).
func (c *client) reach(from, target string) bool {
	c.t.Helper()
	res := c.exec(from, map[string]any{"command": "timeout 3 wget -q -O- http://" + target + "/", "timeout": 10000})
	return res["exitCode"].(float64) == 0 && res["stdout"] == "from b\n"
}

// pairOfSandboxes makes sandboxes a and b, b serving a page on 8080.
func pairOfSandboxes(c *client) (a, b string) {
	a = c.create(nil)["id"].(string)
	b = c.create(nil)["id"].(string)
	c.sh(b, `mkdir -p /www && echo 'from b' > /www/index.html && httpd -p 8080 -h /www`)
	return a, b
}

// TestSandboxesIsolated: by default a sandbox reaches no other sandbox, by
// address, container name or sandbox id, while rtemu still reaches it (dev
// URL); with --sandbox-network shared (the control) it reaches them all.
func TestSandboxesIsolated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  []emulatortest.Option
		net   string
		reach bool
	}{
		{"isolated", nil, emulatortest.DockerNetwork(false), false},
		{"shared", []emulatortest.Option{emulatortest.WithSharedSandboxNetwork()}, emulatortest.DockerNetwork(true), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tc.opts...)
			a, b := pairOfSandboxes(c)
			ip := inspect(t, b).IP
			if ip == "" {
				t.Fatal("b has no address")
			}
			for _, target := range []string{ip + ":8080", "rtemu-" + b + ":8080", b + ":8080"} {
				if got := c.reach(a, target); got != tc.reach {
					t.Errorf("a reaches b at %s: %v, want %v", target, got, tc.reach)
				}
			}
			// rtemu reaches b from the host: not inter-container traffic.
			u := c.devURL(b, 8080)["url"].(string)
			if code, _, body := get(t, u+"/", ""); code != http.StatusOK || body != "from b\n" {
				t.Errorf("dev URL of b: %d %q", code, body)
			}
			// The network is rtemu's, labelled, and lets traffic out.
			cli, err := dockerclient.New(dockerclient.FromEnv)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			res, err := cli.NetworkInspect(context.Background(), tc.net, dockerclient.NetworkInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n := res.Network
			if n.Internal || n.Labels[emulatortest.DockerNetworkLabel] == "" || n.Options["com.docker.network.bridge.enable_ip_masquerade"] == "false" {
				t.Errorf("network %s: internal %v, labels %v, options %v", tc.net, n.Internal, n.Labels, n.Options)
			}
			if _, in := n.Containers[containerID(t, cli, a)]; !in {
				t.Errorf("sandbox a is not on %s", tc.net)
			}
			if out := c.sh(a, "ip route 2>/dev/null || route -n"); !strings.Contains(out, "default") && !strings.Contains(out, "0.0.0.0") {
				t.Errorf("no default route out of the sandbox: %q", out)
			}
		})
	}
}

func containerID(t *testing.T, cli *dockerclient.Client, id string) string {
	t.Helper()
	res, err := cli.ContainerInspect(context.Background(), "rtemu-"+id, dockerclient.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Container.ID
}

// TestSandboxPrivileges: no raw sockets, no device nodes, and a read-only
// cgroup file system (still readable, for programs that read their limits).
func TestSandboxPrivileges(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(map[string]any{"resources": map[string]any{"memory": "512MB"}})["id"].(string)
	var capEff uint64
	for _, line := range strings.Split(c.sh(id, "cat /proc/self/status"), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var err error
			if capEff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	const capMknod, capNetRaw, capChown, capNetBind = 27, 13, 0, 10
	for _, tc := range []struct {
		name string
		bit  uint
		want bool
	}{{"CAP_NET_RAW", capNetRaw, false}, {"CAP_MKNOD", capMknod, false}, {"CAP_CHOWN", capChown, true}, {"CAP_NET_BIND_SERVICE", capNetBind, true}} {
		if got := capEff&(1<<tc.bit) != 0; got != tc.want {
			t.Errorf("CapEff %x: %s %v, want %v", capEff, tc.name, got, tc.want)
		}
	}
	for _, cmd := range []string{
		"mknod /tmp/null c 1 3",
		"touch /sys/fs/cgroup/x",
		"mkdir /sys/fs/cgroup/x",
		"echo 1 > /sys/fs/cgroup/pids/pids.max || echo 1 > /sys/fs/cgroup/pids.max",
		"echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes || echo 1 > /sys/fs/cgroup/memory.max",
	} {
		res := c.exec(id, map[string]any{"command": cmd})
		if res["exitCode"].(float64) == 0 {
			t.Errorf("%q succeeded in a sandbox", cmd)
		}
	}
	limit := c.sh(id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
	if strings.TrimSpace(limit) != fmt.Sprint(512<<20) {
		t.Errorf("memory limit read inside: %q", limit)
	}
	// A TCP server on a low port still works (NET_BIND_SERVICE kept).
	c.sh(id, "mkdir -p /www && echo hi > /www/index.html && httpd -p 80 -h /www")
	if out := c.sh(id, "wget -q -O- http://127.0.0.1:80/"); out != "hi\n" {
		t.Errorf("port 80 inside: %q", out)
	}
}
