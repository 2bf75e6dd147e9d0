package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	dockerclient "github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/server"
)

// Dev URLs (both forms, a WebSocket, server-sent events, servers bound to
// 127.0.0.1), the desktop's readiness and URL, and exec through the agent
// all work where rtemu has no route to any container address: rtemu in a
// network namespace of its own, reaching the engine by its socket and, as
// a remote engine, over TCP. That is Docker Desktop's situation, and a VM's
// or remote engine's.
func TestWithoutRouteToContainers(t *testing.T) {
	emulatortest.RunWithoutRoute(t, "^(TestNoRouteHere|TestDevURL|TestVNCEndpoint|TestExecAPI)$")
}

// TestNoRouteHere checks, inside RunWithoutRoute, that the setup is what it
// claims: no route to the sandbox's container address, and commands run
// through the exec agent.
func TestNoRouteHere(t *testing.T) {
	if emulatortest.NoRoute() == "" {
		t.Skip("runs inside TestWithoutRouteToContainers")
	}
	c := newClient(t)
	id := c.create(nil)["id"].(string)
	c.waitStatus(id, "running")
	cli, err := dockerclient.New(dockerclient.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ins, err := cli.ContainerInspect(context.Background(), "rtemu-"+id, dockerclient.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	for _, n := range ins.Container.NetworkSettings.Networks {
		if n.IPAddress.IsValid() {
			ip = n.IPAddress.String()
		}
	}
	if ip == "" {
		t.Fatal("the container has no address")
	}
	c.sh(id, "httpd -p 8080 -h /")
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "8080"), 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("%s:8080 is reachable from here: the test is not without a route", ip)
	}
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Logf("dial of the container's address: %v", err)
	}
	if ppid := c.sh(id, `tr '\0' ' ' </proc/$PPID/cmdline`); !strings.Contains(ppid, "rtemu-agent") {
		t.Errorf("the command's parent is %q, not the exec agent", ppid)
	}
	if emulatortest.NoRoute() == "tcp" && !strings.HasPrefix(cli.DaemonHost(), "tcp://") {
		t.Errorf("engine reached at %s, want a TCP relay", cli.DaemonHost())
	}

	// rtemu doctor sees the setup for what it is.
	var out bytes.Buffer
	server.Doctor(context.Background(), config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0"}, &out)
	wants := []string{"info container addresses: not routable from here"}
	if emulatortest.NoRoute() == "tcp" {
		wants = append(wants, "remote (reached over the network)")
	}
	for _, want := range wants {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out.String())
		}
	}
}

// A create with mounts on an engine that does not see rtemu's data dir (a
// remote engine, a VM engine without the folder shared) is a 400 saying
// why and what to do, and changes nothing; sandboxes without mounts work.
func TestMountsNeedAnEngineThatSeesTheDataDir(t *testing.T) {
	emulatortest.RunWithPrivateDataDir(t, "^TestMountsRefusedHere$")
}

func TestMountsRefusedHere(t *testing.T) {
	dir := os.Getenv(emulatortest.EnvPrivateDataDir)
	if dir == "" {
		t.Skip("runs inside TestMountsNeedAnEngineThatSeesTheDataDir")
	}
	c := newClient(t, emulatortest.WithDataDir(dir))
	ws := c.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "src"}).Data()
	r := c.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu",
		"mounts": []map[string]any{{"workspaceId": ws["id"], "path": "/workspace/src"}}})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "does not see "+dir) || !strings.Contains(string(r.Body), `"mounts"`) {
		t.Fatalf("create with mounts: %d %s", r.Status, r.Body)
	}
	if list := c.must(http.StatusOK, "GET", "/v1/sandboxes", nil).List(); len(list) != 0 {
		t.Fatalf("the refused create left %d sandboxes", len(list))
	}
	id := c.create(nil)["id"].(string)
	c.waitStatus(id, "running")
	if out := c.sh(id, "echo works"); out != "works\n" {
		t.Fatalf("exec in a sandbox without mounts: %q", out)
	}
	// The engine refused the agent's link folder too, as it refuses any
	// folder of the data dir: the command ran on an agent on the engine's
	// stream (docs/exec-agent.md).
	if out := c.sh(id, `tr '\0' '\n' </proc/$PPID/environ | grep '^RTEMU_AGENT_SERVE='`); out != "RTEMU_AGENT_SERVE=1\n" {
		t.Fatalf("the command's parent: %q, want an agent on a stream", out)
	}
}
