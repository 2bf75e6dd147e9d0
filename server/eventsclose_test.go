package server_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

// TestEventsWrittenBeforeExit: the activity feed is written in the
// background, yet every event of a run is in the database once rtemu has
// stopped, also the destroyed events of an ephemeral exit, which removes
// the sandboxes just before the store is closed.
func TestEventsWrittenBeforeExit(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := emulatortest.Start(ctx, emulatortest.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := srv.Service().Create(ctx, sandbox.CreateParams{Template: "base-ubuntu"})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil { // removes the sandboxes, as --ephemeral does
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, _, err := st.ListEvents(ctx, sb.ID, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, e := range evs {
		types[e.Type] = true
	}
	if !types["created"] || !types["destroyed"] {
		t.Fatalf("events in the database after the exit: %v; want created and destroyed", types)
	}
}
