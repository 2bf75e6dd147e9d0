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
			env := []string{EnvNoRoute + "=" + mode}
			if mode == "unix" {
				env = append(env, "DOCKER_HOST=unix://"+dockerSocket)
			}
			rerun(t, "in a network namespace of its own (engine by "+mode+")", run, env,
				"unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`)
		})
	}
}

// EnvPrivateDataDir names, in a test process run by
// RunWithPrivateDataDir, a folder that this process sees and the engine
// does not, as with a remote engine or a VM engine without it shared.
const EnvPrivateDataDir = "RTEMU_TEST_PRIVATE_DATA_DIR"

// RunWithPrivateDataDir runs this test binary's tests that match run again
// in a mount namespace of their own, where the folder EnvPrivateDataDir
// names is a tmpfs the engine cannot see.
func RunWithPrivateDataDir(t *testing.T, run string) {
	t.Helper()
	if os.Getenv(EnvPrivateDataDir) != "" {
		t.Skip("already inside a mount namespace of its own")
	}
	if os.Geteuid() != 0 {
		t.Skip("unshare -m needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare on this machine")
	}
	SkipIfNoDocker(t)
	dir := t.TempDir()
	rerun(t, "with a data dir the engine cannot see", run, []string{EnvPrivateDataDir + "=" + dir},
		"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", `mount -t tmpfs rtemu-private "$`+EnvPrivateDataDir+`" && exec "$0" "$@"`)
}

// rerun runs this test binary again under the command wrap, with the tests
// that match run and env added, and fails unless some ran and all passed.
func rerun(t *testing.T, how, run string, env []string, wrap ...string) {
	t.Helper()
	args := append(wrap[1:], os.Args[0], "-test.run", run, "-test.count=1", "-test.v", "-test.timeout=15m")
	cmd := exec.Command(wrap[0], args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	passed := regexp.MustCompile(`(?m)^--- PASS: (\S+)`).FindAllSubmatch(out, -1)
	if err != nil || len(passed) == 0 || bytes.Contains(out, []byte("--- SKIP")) {
		t.Fatalf("%s: %v; output:\n%s", how, err, tail(out, 12000))
	}
	var names []string
	for _, p := range passed {
		names = append(names, string(p[1]))
	}
	t.Logf("passed %s: %s", how, strings.Join(names, ", "))
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
