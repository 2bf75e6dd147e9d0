package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/dockerdriver"
	"github.com/rtemu-dev/rtemu/templates"
)

// Doctor checks what rtemu needs and prints one line a check. It returns
// false when something would stop rtemu from working.
func Doctor(ctx context.Context, cfg config.Config, w io.Writer) bool {
	healthy := true
	report := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark, healthy = "FAIL", false
		}
		fmt.Fprintf(w, "%s %s\n", mark, fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := dockerdriver.New()
	if err != nil {
		report(false, "docker: %v", err)
		return false
	}
	defer d.Close()
	info, err := d.Ping(ctx)
	if err != nil {
		report(false, "docker: no engine answers at %s (start it, or set DOCKER_HOST): %v", d.Host(), err)
	} else {
		report(true, "docker: engine %s (API %s, %s, %d CPUs) at %s", info.Version, info.APIVersion, info.OS, info.CPUs, info.Host)
		for _, t := range cfg.Templates {
			present, err := d.ImagePresent(ctx, t.Image)
			switch {
			case err != nil:
				report(false, "template %s: image %s: %v", t.Name, t.Image, err)
			case present:
				report(true, "template %s: image %s present", t.Name, t.Image)
			case t.Recipe != "":
				// Not fatal: it is built at the first create where a registry answers.
				fmt.Fprintf(w, "warn template %s: image %s is not built; it is built at the first create from %s "+
					"(needs a registry), or build it now: rtemu templates build %s (offline: add --base IMAGE, "+
					"a local Debian or Ubuntu image)\n", t.Name, t.Image, templates.DefaultBase, t.Recipe)
			default:
				// Not fatal: it is pulled at the first create where a registry answers.
				fmt.Fprintf(w, "warn template %s: image %s is not present; it is pulled at the first create "+
					"(needs a registry), or map the template to a local image with --template %s=IMAGE\n",
					t.Name, t.Image, t.Name)
			}
		}
	}
	for _, l := range []struct{ what, addr string }{{"API", cfg.Addr}, {"SSH", cfg.SSHAddr}} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			report(false, "%s address %s is not free: %v", l.what, l.addr, err)
			continue
		}
		ln.Close()
		report(true, "%s address %s is free", l.what, l.addr)
	}
	return healthy
}
