package server_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// TestDoctorKnowsItsOwnRtemu: addresses held by the running rtemu of the
// data dir are where they should be, not a fault; and doctor makes no data
// dir that does not exist.
func TestDoctorKnowsItsOwnRtemu(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	ctx := context.Background()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := emulatortest.New(t, emulatortest.WithFake(), emulatortest.WithDataDir(dir))
	tpl := []sandbox.Template{{Name: "base-ubuntu", Image: img}}
	cfg := config.Config{Addr: strings.TrimPrefix(srv.URL, "http://"), SSHAddr: srv.SSHAddr, DataDir: dir, Templates: tpl}
	var out bytes.Buffer
	healthy := server.Doctor(ctx, cfg, &out)
	for _, want := range []string{
		"ok   API address " + cfg.Addr + " is served by the running rtemu of " + dir,
		"ok   SSH address " + cfg.SSHAddr + " is served by the running rtemu of " + dir,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out.String())
		}
	}
	if !healthy {
		t.Errorf("doctor called its own running rtemu a fault:\n%s", out.String())
	}

	notYet := filepath.Join(t.TempDir(), "not", "yet")
	out.Reset()
	server.Doctor(ctx, config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: notYet, Templates: tpl}, &out)
	if _, err := os.Stat(filepath.Dir(notYet)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("doctor made %s (%v)", filepath.Dir(notYet), err)
	}
	if !strings.Contains(out.String(), "(where the data dir "+notYet+" will be made)") {
		t.Errorf("doctor did not check the mount where the data dir will be made:\n%s", out.String())
	}
}
