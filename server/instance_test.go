package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// TestOneRtemuPerDataDir: a second start on a data dir fails at once,
// naming the running rtemu's addresses; once that one stops, a start works.
func TestOneRtemuPerDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := emulatortest.Start(context.Background(), emulatortest.WithFake(), emulatortest.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	_, err = emulatortest.Start(context.Background(), emulatortest.WithFake(), emulatortest.WithDataDir(dir))
	var inUse *server.InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second start: %v, want an InUseError", err)
	}
	for _, want := range []string{dir, first.URL, first.SSHAddr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := emulatortest.Start(context.Background(), emulatortest.WithFake(), emulatortest.WithDataDir(dir))
	if err != nil {
		t.Fatalf("start after the first stopped: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLeftovers: what a stop leaves running is named, with how to remove it.
func TestLeftovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := emulatortest.New(t, emulatortest.WithFake(), emulatortest.WithContainersKept())
	if got := srv.Leftovers(ctx); got != "" {
		t.Fatalf("leftovers of an rtemu with no sandbox: %q", got)
	}
	sb, err := srv.Service().Create(ctx, sandbox.CreateParams{Template: "base-ubuntu", Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Leftovers(ctx)
	for _, want := range []string{sb.ID + " (kept)", "rtemu sandbox destroy", "docker rm -f", "label=rtemu.instance="} {
		if !strings.Contains(got, want) {
			t.Errorf("leftovers %q lack %q", got, want)
		}
	}
}

// TestStartWarnsOfMissingImages: serve says at start which template's image
// is not here, and the command that fixes it.
func TestStartWarnsOfMissingImages(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	var log emulatortest.Buffer
	emulatortest.New(t, emulatortest.WithLog(&log), emulatortest.WithTemplate("gone", "rtemu-test/none:missing"))
	for _, want := range []string{"a template's image is not here", "docker pull rtemu-test/none:missing", "template=gone"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "template=base-ubuntu") {
		t.Errorf("a present image warned of:\n%s", log.String())
	}
}
