package emulatortest

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// EnvNoRoute is set, to "unix" or "tcp", in a test process that runs in a
// network namespace of its own (RunWithoutRoute): it reaches the engine
// through its unix socket, or through a TCP relay to it as a remote engine
// is reached, and has no route to any container address, as on Docker
// Desktop.
const EnvNoRoute = "RTEMU_TEST_NO_ROUTE"

// NoRoute says how this test process reaches the engine when it runs
// without a route to containers: "" when it does not.
func NoRoute() string { return os.Getenv(EnvNoRoute) }

// dockerSocket is the engine's socket that RunWithoutRoute needs.
const dockerSocket = "/var/run/docker.sock"

// RunWithoutRoute runs this test binary's tests that match run (a -test.run
// pattern) again, twice, inside a network namespace made with unshare -n
// (loopback up): once reaching the engine through its unix socket, once
// through a TCP relay (DOCKER_HOST=tcp://…). It fails when any of them
// fails or none ran.
func RunWithoutRoute(t *testing.T, run string) {
	t.Helper()
	if NoRoute() != "" {
		t.Skip("already inside a network namespace of its own")
	}
	if os.Geteuid() != 0 {
		t.Skip("unshare -n needs root")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on this machine", tool)
		}
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://"+dockerSocket) {
		t.Skipf("the engine is at %s; these runs need it at %s", h, dockerSocket)
	}
	if _, err := os.Stat(dockerSocket); err != nil {
		t.Skipf("no engine socket: %v", err)
	}
	SkipIfNoDocker(t)
	for _, mode := range []string{"unix", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command("unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
				os.Args[0], "-test.run", run, "-test.count=1", "-test.v", "-test.timeout=15m")
			cmd.Env = append(os.Environ(), EnvNoRoute+"="+mode)
			if mode == "unix" {
				cmd.Env = append(cmd.Env, "DOCKER_HOST=unix://"+dockerSocket)
			}
			out, err := cmd.CombinedOutput()
			passed := regexp.MustCompile(`(?m)^--- PASS: (\S+)`).FindAllSubmatch(out, -1)
			if err != nil || len(passed) == 0 || bytes.Contains(out, []byte("--- SKIP")) {
				t.Fatalf("in a network namespace of its own (engine by %s): %v; output:\n%s", mode, err, tail(out, 12000))
			}
			var names []string
			for _, p := range passed {
				names = append(names, string(p[1]))
			}
			t.Logf("passed with no route to containers (engine by %s): %s", mode, strings.Join(names, ", "))
		})
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

var relayOnce sync.Once

// routeEngine, in a "tcp" run of RunWithoutRoute, points DOCKER_HOST at a
// TCP relay to the engine's socket, as a remote engine is reached.
func routeEngine() {
	if NoRoute() != "tcp" {
		return
	}
	relayOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					e, err := net.Dial("unix", dockerSocket)
					if err != nil {
						return
					}
					defer e.Close()
					go func() { _, _ = io.Copy(e, c); _ = e.(*net.UnixConn).CloseWrite() }()
					_, _ = io.Copy(c, e)
				}()
			}
		}()
		os.Setenv("DOCKER_HOST", "tcp://"+ln.Addr().String())
	})
}
