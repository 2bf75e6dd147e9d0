package sandbox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// Nothing outlives rtemu: a sandbox whose container is still being made
// when it is deleted, when rtemu stops, or both, has no container once the
// provisioning ends (Close waits for it). The engine's call the create is
// caught in varies: its own create (which a stop does not cut short) or the
// start after it (which a stop does).
func TestNoContainerOutlivesAnInFlightCreate(t *testing.T) {
	t.Parallel()
	for _, hang := range []string{"Create", "Start"} {
		for _, tc := range []struct {
			name       string
			del, stop  bool
			wantStatus sandbox.Status
		}{
			{"deleted", true, false, sandbox.StatusDestroyed},
			{"deleted then stopped", true, true, sandbox.StatusDestroyed},
			{"stopped", false, true, sandbox.StatusCreating},
		} {
			t.Run(hang+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				if err := e.svc.Start(e.ctx); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(e.svc.Close)
				entered, release := e.eng.Hang(hang)
				defer release()
				sb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base"})
				if err != nil {
					t.Fatal(err)
				}
				<-entered
				if tc.del {
					out, err := e.svc.Delete(e.ctx, sb.ID, false)
					if err != nil || out.Status != sandbox.StatusDestroyed {
						t.Fatalf("Delete during the create = %v, %v", out, err)
					}
				}
				if tc.stop {
					closed := make(chan struct{})
					go func() { e.svc.Close(); close(closed) }()
					<-e.svc.Stopping()
					release()
					<-closed
					if names := e.eng.Names(); len(names) != 0 {
						t.Fatalf("containers left after Close: %v", names)
					}
				} else {
					release()
					testwait.Check(t, 10*time.Second, func() error {
						if names := e.eng.Names(); len(names) != 0 {
							return fmt.Errorf("containers left after the create ended: %v", names)
						}
						return nil
					})
				}
				if e.eng.Calls("Create") == 0 {
					t.Fatal("the engine was never asked to create the container")
				}
				if got := e.get(sb.ID).Status; got != tc.wantStatus {
					t.Fatalf("sandbox after the create ended: %s, want %s", got, tc.wantStatus)
				}
			})
		}
	}
}
