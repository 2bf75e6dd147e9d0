package server_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// stop ends rtemu with SIGTERM, as a user's Ctrl-C or a service manager
// does, and waits for the process to exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			p.t.Fatalf("rtemu exited with %v after SIGTERM; log:\n%s", err, p.log)
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("rtemu still runs a minute after SIGTERM; log:\n%s", p.log)
	}
}

// TestNothingOutlivesAStop: a sandbox deleted right after its create, while
// the engine is still making its container, and one whose create is still
// under way, leave no container of rtemu's instance once rtemu has exited
// on SIGTERM. Many rounds, as the timing differs from one to the next.
func TestNothingOutlivesAStop(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		delete string // "" no delete; else the delete's query
		rounds int
	}{
		{"create+delete", "?", 6},
		{"create+async delete", "?async=true", 3},
		{"create in flight", "", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			containers := instanceContainers(t, dataDir)
			for round := 0; round < tc.rounds; round++ {
				p := startRtemu(t, dataDir)
				var ids []string
				for i := 0; i < 2; i++ {
					code, data := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu",
						"resources": map[string]any{"vcpus": 1, "memory": "128MB"}})
					if code != 201 {
						t.Fatalf("round %d: create: %d", round, code)
					}
					ids = append(ids, data["id"].(string))
				}
				if tc.delete != "" {
					for _, id := range ids {
						if code, data := p.do("DELETE", "/v1/sandboxes/"+id+tc.delete, nil); code != 200 {
							t.Fatalf("round %d: delete %s: %d %v", round, id, code, data)
						}
					}
				}
				p.stop()
				if cs := containers(); len(cs) != 0 {
					names := make([]string, 0, len(cs))
					for _, c := range cs {
						names = append(names, fmt.Sprintf("%s (%s)", c.Name, c.State))
					}
					t.Fatalf("round %d: containers of rtemu's instance after it exited: %v; log:\n%s", round, names, p.log)
				}
			}
		})
	}
}
