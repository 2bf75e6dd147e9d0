package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/sandbox"
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
	if cfg.Engine == "kubernetes" {
		report(false, "engine: %v", ErrEngineNotBuiltIn)
		return false
	}
	d, err := docker.New()
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
		setupReport(ctx, d, cfg, w)
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

// setupReport says what kind of setup this is and what that means for the
// user, one line a fact.
func setupReport(ctx context.Context, d *docker.Driver, cfg config.Config, w io.Writer) {
	info := func(format string, args ...any) { fmt.Fprintf(w, "info "+format+"\n", args...) }
	warn := func(format string, args ...any) { fmt.Fprintf(w, "warn "+format+"\n", args...) }
	st, err := d.Setup(ctx)
	if err != nil {
		warn("setup: %v", err)
		return
	}
	kind := st.Kind
	if st.Rootless {
		kind += ", rootless"
	}
	if st.Remote {
		kind += ", remote (reached over the network)"
	}
	info("setup: %s: sandboxes, exec, SSH, dev URLs and the desktop all work the same on it", kind)
	if st.Routable {
		info("container addresses: routable from here; rtemu does not use them (ports are reached from inside each sandbox)")
	} else {
		info("container addresses: not routable from here (as on Docker Desktop or a remote engine); rtemu does not need them: ports are reached from inside each sandbox")
	}
	if st.Kind == "Podman" {
		info("podman: sandboxes run with an init process as PID 1; install catatonit if creates fail naming it")
	}
	if cfg.ExecAgentOff {
		info("exec agent: off (--exec-agent off): every command is a Docker exec (~60 ms), and ports are relayed by bash or nc in the sandbox")
	} else {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		a := d.Agent(actx)
		cancel()
		if a.Source != "" {
			info("exec agent: %s for %s (%s): commands start in about a millisecond", a.Source, a.Platform, a.Path)
		} else {
			warn("exec agent: none: %s; every command is a Docker exec (~60 ms), and ports are relayed by bash or nc in the sandbox", a.Error)
		}
	}
	var image string
	for _, t := range cfg.Templates {
		if ok, _ := d.ImagePresent(ctx, t.Image); ok {
			image = t.Image
			break
		}
	}
	if image == "" {
		info("disk limits, workspace mounts: not checked (no template image present to check with)")
		return
	}
	switch l, err := d.DiskLimits(ctx, image, nil); {
	case err != nil:
		warn("disk limits: could not check: %v", err)
	case l.Enforced:
		info("disk limits: enforced (storage driver %s): a sandbox's files cannot outgrow its disk", l.StorageDriver)
	default:
		warn("disk limits: not enforced on this engine: %s; rtemu measures running sandboxes' files (a few every %v, in turn) and records a \"disk\" event past a sandbox's disk", l.Why, sandbox.DefaultDiskWatch)
	}
	if cfg.DataDir == "" {
		return
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		warn("workspace mounts: cannot make the data dir %s: %v", cfg.DataDir, err)
		return
	}
	shared, err := d.SharesFolder(ctx, cfg.DataDir, image, nil)
	switch {
	case err != nil:
		warn("workspace mounts: could not check: %v", err)
	case shared:
		info("workspace mounts: the engine sees the data dir %s at the same path: mounts work", cfg.DataDir)
	default:
		warn("workspace mounts: the engine does not see the data dir %s: creates with mounts answer 400 (share the folder with the engine at the same path, or point --data-dir at one it shares)", cfg.DataDir)
	}
	switch {
	case cfg.ExecAgentOff:
	case cfg.ExecAgentStreamsOnly:
		info("agent link: off (--exec-agent streams): commands and port connections go by the engine's streams")
	case shared && docker.LinksSupported:
		info("agent link: commands and port connections go by a unix socket in %s (each sandbox's folder, read-only at %s); where the socket does not reach the containers (Docker Desktop's VM), rtemu finds out at the first command and uses the engine's streams", filepath.Join(cfg.DataDir, "link"), docker.LinkMount)
	default:
		info("agent link: not here (rtemu and the engine do not share a kernel and folder): commands and port connections go by the engine's streams; a large download through a dev URL runs at about a tenth of its speed on Linux with a local engine")
	}
}
