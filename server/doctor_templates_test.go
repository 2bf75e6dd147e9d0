package server_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// TestDoctorTemplateNotBuilt: a recipe template whose image is missing is
// a warning that names the command building it; the defaults are the
// recipes' images.
func TestDoctorTemplateNotBuilt(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	img, err := emulatortest.TestImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", Templates: []sandbox.Template{
		{Name: "desktop-ubuntu", Image: "rtemu/desktop-ubuntu:000000000000", Recipe: "desktop-ubuntu"},
		// base-ubuntu's sandboxes are made from its fallback until its
		// recipe is built: that is the image doctor tells of.
		{Name: "base-ubuntu", Image: "rtemu/base-ubuntu:000000000000", Recipe: "base-ubuntu", Fallback: img},
		{Name: "other-ubuntu", Image: "rtemu/base-ubuntu:000000000000", Recipe: "base-ubuntu", Fallback: "rtemu-test/none:missing"},
	}}
	var out bytes.Buffer
	healthy := server.Doctor(context.Background(), cfg, &out)
	for _, want := range []string{
		"warn template desktop-ubuntu: image rtemu/desktop-ubuntu:000000000000 is not here; the first create builds it " +
			"from ubuntu:24.04 (a registry is needed, and minutes); build it now: rtemu templates build desktop-ubuntu (offline: add --base",
		"ok   template base-ubuntu: image " + img + " present (until its recipe's image rtemu/base-ubuntu:000000000000 is built: " +
			"rtemu templates build base-ubuntu)",
		"warn template other-ubuntu: image rtemu-test/none:missing (until its recipe's image rtemu/base-ubuntu:000000000000 is built: " +
			"rtemu templates build base-ubuntu) is not here; the first create pulls it (a registry is needed); have it now: " +
			"docker pull rtemu-test/none:missing, or offline: rtemu templates build base-ubuntu --base",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor says\n%s\nwant %q", out.String(), want)
		}
	}
	if !healthy {
		t.Errorf("an unbuilt template made doctor fail:\n%s", out.String())
	}
	for _, tpl := range config.DefaultTemplates {
		if tpl.Recipe != tpl.Name || !strings.HasPrefix(tpl.Image, "rtemu/"+tpl.Name+":") {
			t.Errorf("default template %+v is not its recipe's image", tpl)
		}
	}
}

// TestDoctorMountCheckWithoutImage: with no template image here yet (a
// newcomer's state), doctor still checks workspace mounts, with an empty
// image of its own that it removes, leaving nothing in the data dir.
func TestDoctorMountCheckWithoutImage(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: dir, Templates: []sandbox.Template{
		{Name: "base-ubuntu", Image: "rtemu-test/none:missing"},
	}}
	var out bytes.Buffer
	server.Doctor(context.Background(), cfg, &out)
	for _, want := range []string{
		"info workspace mounts: the engine sees the data dir " + dir + " at the same path: mounts work",
		"info disk limits: not checked (no template image present to check with)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor says\n%s\nwant %q", out.String(), want)
		}
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Errorf("doctor left %v in the data dir (%v)", left, err)
	}
	images, err := exec.Command("docker", "images", "-q", "--filter", "reference="+docker.ProbeImagePrefix+"*").Output()
	if err != nil {
		t.Fatal(err)
	}
	if len(bytes.TrimSpace(images)) != 0 {
		t.Errorf("doctor left its probe images: %s", images)
	}
}
