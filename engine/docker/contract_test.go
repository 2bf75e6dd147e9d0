package docker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/engine/enginetest"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// The Docker engine passes the contract's conformance suite, as the fake
// does (engine/fake), on both exec paths.
func TestConformance(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	img, err := emulatortest.TestImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range execPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			enginetest.Run(t, enginetest.Harness{
				New: func(t *testing.T) engine.Engine {
					d, err := docker.New(p.options...)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { d.Close() })
					return d.Engine()
				},
				Image: img,
				Serve: func(t *testing.T, e engine.Engine, name string, port int) {
					// busybox nc in the background: the exec returns at once;
					// then wait until the kernel lists the port as listening
					// (state 0A in /proc/net/tcp*), so no dial races its start.
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
			})
		})
	}
}
