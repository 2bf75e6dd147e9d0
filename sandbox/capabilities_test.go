package sandbox_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// withCaps changes what the fake engine says it can do before the service
// reads it.
func withCaps(change func(*engine.Capabilities)) envOption {
	return func(c *sandbox.Config) {
		f := c.Engine.(*fake.Engine)
		caps := f.Capabilities()
		change(&caps)
		f.SetCapabilities(caps)
	}
}

// The service reads what the engine can do instead of assuming it: each
// capability, on and off, on the fake engine.
func TestCapabilities(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		off   func(*engine.Capabilities)
		opts  []envOption
		check func(t *testing.T, e *env, on bool)
	}{
		{"Pause", func(c *engine.Capabilities) { c.Pause = false }, nil, func(t *testing.T, e *env, on bool) {
			idle := 60
			sb := e.running(sandbox.CreateParams{IdleTimeout: &idle})
			_, _, err := e.svc.Pause(e.ctx, sb.ID)
			if on {
				if err != nil || e.get(sb.ID).Status != sandbox.StatusPaused {
					t.Fatalf("pause: %v, now %s", err, e.get(sb.ID).Status)
				}
				return
			}
			if !errors.Is(err, sandbox.ErrConflict) || !strings.Contains(err.Error(), "the fake engine cannot pause") {
				t.Fatalf("pause on an engine that cannot: %v; want a conflict naming the engine", err)
			}
			if _, err := e.svc.ExpireIdle(e.ctx, sb.ID); !errors.Is(err, sandbox.ErrConflict) {
				t.Fatalf("idle expiry on an engine that cannot pause: %v; want a conflict", err)
			}
			// No idle sweep: minutes pass, the sandbox stays running and
			// the engine is never asked to pause.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				e.clock.Advance(time.Minute)
				if st := e.get(sb.ID).Status; st != sandbox.StatusRunning {
					t.Fatalf("an idle sandbox became %s on an engine that cannot pause", st)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n := e.eng.Calls("Pause"); n != 0 {
				t.Fatalf("the engine was asked to pause %d times", n)
			}
		}},
		{"SharedFolders", func(c *engine.Capabilities) { c.SharedFolders = false },
			[]envOption{func(c *sandbox.Config) { c.DataDir = t.TempDir() }}, func(t *testing.T, e *env, on bool) {
				ws, err := e.svc.CreateWorkspace(e.ctx, sandbox.WorkspaceParams{Name: "w"})
				if err != nil {
					t.Fatal(err)
				}
				_, err = e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base",
					Mounts: []sandbox.Mount{{WorkspaceID: ws.ID, Path: "/workspace/w"}}})
				if on {
					if err != nil || e.eng.Calls("SharesFolder") != 1 {
						t.Fatalf("create with a mount: %v, the engine asked %d times", err, e.eng.Calls("SharesFolder"))
					}
					return
				}
				if !errors.Is(err, sandbox.ErrInvalid) || !strings.Contains(err.Error()+details(err), "the fake engine cannot share host folders") {
					t.Fatalf("create with a mount on an engine that cannot share folders: %v %s; want invalid, naming the engine", err, details(err))
				}
				if n := e.eng.Calls("SharesFolder"); n != 0 || len(e.eng.Names()) != 0 {
					t.Fatalf("asked the engine %d times, containers %v", n, e.eng.Names())
				}
			}},
		{"DiskQuota", func(c *engine.Capabilities) { c.DiskQuota = false }, nil, func(t *testing.T, e *env, on bool) {
			e.eng.SetDiskLimits(engine.DiskLimits{Enforced: true, StorageDriver: "fake"})
			sb := e.running(sandbox.CreateParams{})
			l, known := e.svc.DiskLimits()
			spec, _ := e.eng.Spec(sb.ContainerName())
			if on {
				if !known || !l.Enforced || spec.DiskBytes == 0 {
					t.Fatalf("disk limits %+v (known %v), container disk %d; want enforced", l, known, spec.DiskBytes)
				}
				return
			}
			if !known || l.Enforced || !strings.Contains(l.Why, "fake engine has no per-sandbox disk quota") ||
				e.eng.Calls("DiskLimits") != 0 || spec.DiskBytes != 0 {
				t.Fatalf("disk limits %+v (known %v), asked %d times, container disk %d; want not enforced without asking",
					l, known, e.eng.Calls("DiskLimits"), spec.DiskBytes)
			}
		}},
		{"PeerNames", func(c *engine.Capabilities) { c.PeerNames = false }, nil, func(t *testing.T, e *env, on bool) {
			sb := e.running(sandbox.CreateParams{})
			spec, _ := e.eng.Spec(sb.ContainerName())
			if got := len(spec.Aliases) > 0; got != on {
				t.Fatalf("aliases %v with PeerNames %v", spec.Aliases, on)
			}
		}},
		{"UpdateLimits", func(c *engine.Capabilities) { c.UpdateLimits = false },
			[]envOption{func(c *sandbox.Config) { c.WarmPool = map[string]int{"base": 1} }}, func(t *testing.T, e *env, on bool) {
				if on {
					testwait.Until(t, 10*time.Second, func() bool { return e.svc.WarmPoolReady("base") == 1 }, "the pool did not fill")
					return
				}
				e.running(sandbox.CreateParams{}) // creates still work
				if n := e.svc.WarmPoolReady("base"); n != 0 || len(e.eng.Names()) != 1 || e.eng.Calls("UpdateLimits") != 0 {
					t.Fatalf("pool %d, containers %v, limits updated %d times; want no pool", n, e.eng.Names(), e.eng.Calls("UpdateLimits"))
				}
			}},
		{"CPUsCappedToHost", func(c *engine.Capabilities) { c.CPUsCappedToHost = false },
			[]envOption{func(c *sandbox.Config) { c.Engine.(*fake.Engine).SetCPUs(2) }}, func(t *testing.T, e *env, on bool) {
				four := 4
				sb := e.running(sandbox.CreateParams{VCPUs: &four})
				spec, _ := e.eng.Spec(sb.ContainerName())
				want := int64(4e9)
				if on {
					want = 2e9
				}
				if spec.NanoCPUs != want || sb.Resources.VCPUs != 4 {
					t.Fatalf("container CPUs %d (sandbox says %d); want %d", spec.NanoCPUs, sb.Resources.VCPUs, want)
				}
			}},
		{"Name", func(c *engine.Capabilities) { c.Name = "Elsewhere" }, nil, func(t *testing.T, e *env, on bool) {
			e.eng.SetDown(true)
			_, err := e.svc.EngineInfo(e.ctx)
			want := "the fake engine is not reachable"
			if !on {
				want = "the Elsewhere engine is not reachable"
			}
			if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), want) {
				t.Fatalf("engine down: %v; want %q", err, want)
			}
		}},
	}
	for _, c := range cases {
		for _, on := range []bool{true, false} {
			name := c.name + "/on"
			if !on {
				name = c.name + "/off"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				opts := c.opts
				if !on {
					opts = append(opts[:len(opts):len(opts)], withCaps(c.off))
				}
				c.check(t, started(t, opts...), on)
			})
		}
	}
}

// details joins the field messages of an invalid request.
func details(err error) string {
	var se *sandbox.Error
	if !errors.As(err, &se) {
		return ""
	}
	var b strings.Builder
	for _, d := range se.Details {
		b.WriteString(" " + d.Field + ": " + d.Message)
	}
	return b.String()
}
