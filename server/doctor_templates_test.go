package server_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// TestDoctorTemplateNotBuilt: a recipe template whose image is missing is
// a warning that names the command building it; the defaults are the
// recipes' images.
func TestDoctorTemplateNotBuilt(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	cfg := config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", Templates: []sandbox.Template{
		{Name: "desktop-ubuntu", Image: "rtemu/desktop-ubuntu:000000000000", Recipe: "desktop-ubuntu"},
	}}
	var out bytes.Buffer
	healthy := server.Doctor(context.Background(), cfg, &out)
	want := "warn template desktop-ubuntu: image rtemu/desktop-ubuntu:000000000000 is not built; it is built at the first create " +
		"from ubuntu:24.04 (needs a registry), or build it now: rtemu templates build desktop-ubuntu (offline: add --base IMAGE"
	if !strings.Contains(out.String(), want) {
		t.Errorf("doctor says\n%s\nwant %q", out.String(), want)
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
