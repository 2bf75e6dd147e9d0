package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// TestWarmPoolReconcileAndClose: reconcile (as after a lost event stream)
// leaves the pool's containers alone although they have no record; a
// restart on the same state removes the previous run's pool; closing an
// ephemeral rtemu removes them all.
func TestWarmPoolReconcileAndClose(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	ctx := context.Background()
	d, err := docker.New()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dir := t.TempDir()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// server.Start rather than emulatortest: its Close keeps the containers,
	// as a plain stop of rtemu does.
	first, err := server.Start(ctx, config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: dir,
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}}, WarmPool: map[string]int{"base-ubuntu": 2}},
		"test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	svc := first.Service()
	pool := func() []docker.Container {
		t.Helper()
		cs, err := d.List(ctx, map[string]string{sandbox.LabelInstance: svc.Instance(), sandbox.LabelPool: "base-ubuntu"})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	waitReady := func(svc *sandbox.Service) {
		t.Helper()
		testwait.Until(t, 90*time.Second, func() bool { return svc.WarmPoolReady("base-ubuntu") >= 2 }, "pool not filled")
	}
	waitReady(svc)
	before := pool()
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if after := pool(); len(before) != 2 || len(after) != 2 || svc.WarmPoolReady("base-ubuntu") != 2 {
		t.Fatalf("reconcile touched the pool: before %v after %v", before, after)
	}

	// A restart on the same state: the old pool's containers are orphans.
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pool(); len(got) != 2 {
		t.Fatalf("a plain stop removed the pool: %v", got)
	}
	srv, err := emulatortest.Start(ctx, emulatortest.WithDataDir(dir), emulatortest.WithWarmPool("base-ubuntu", 2))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(srv.Service())
	for _, c := range before {
		if _, err := d.Inspect(ctx, c.Name); err == nil {
			t.Errorf("previous run's pool container %s not removed", c.Name)
		}
	}
	// emulatortest's Close removes every container, as --ephemeral does.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if left := pool(); len(left) != 0 {
		t.Fatalf("pool containers left at exit: %v", left)
	}
}
