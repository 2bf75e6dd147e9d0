package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/sandbox"
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
	engineOK := false
	if cfg.Engine == "kubernetes" {
		engineOK = doctorKubernetes(ctx, cfg, w, report)
	} else {
		engineOK = doctorDocker(ctx, cfg, w, report)
	}
	if !engineOK {
		return false
	}
	// An address held by the rtemu of this data dir is where it should be.
	var running *Running
	if cfg.DataDir != "" {
		if r, err := FindRunning(ctx, cfg.DataDir); err == nil {
			running = &r
		}
	}
	for _, l := range []struct{ what, addr, ours string }{{"API", cfg.Addr, cfg.Addr}, {"SSH", cfg.SSHAddr, cfg.SSHAddr}} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil && running != nil && (sameAddr(strings.TrimPrefix(running.URL, "http://"), l.ours) || sameAddr(running.SSHAddr, l.ours)) {
			report(true, "%s address %s is served by the running rtemu of %s (pid %d, version %s)", l.what, l.addr, cfg.DataDir, running.PID, running.Version)
			continue
		}
		if err != nil {
			report(false, "%s address %s is not free: %v", l.what, l.addr, err)
			continue
		}
		ln.Close()
		report(true, "%s address %s is free", l.what, l.addr)
	}
	return healthy
}

// sameAddr says whether two listen addresses are the same: the same port,
// and the same host or both "any" (0.0.0.0, ::, or none: a listener on
// 0.0.0.0 reports itself on [::]).
func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	anyHost := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	return ha == hb || anyHost(ha) && anyHost(hb)
}

// doctorDocker checks the Docker engine, the setup and the templates'
// images; false when there is no engine to check more against.
func doctorDocker(ctx context.Context, cfg config.Config, w io.Writer, report func(bool, string, ...any)) bool {
	d, err := docker.New()
	if err != nil {
		report(false, "docker: %v", err)
		return false
	}
	defer d.Close()
	info, err := d.Ping(ctx)
	if err != nil {
		report(false, "docker: no engine answers at %s (start it, or set DOCKER_HOST): %v", d.Host(), err)
		fmt.Fprint(w, noEngineHints)
	} else {
		report(true, "docker: engine %s (API %s, %s, %d CPUs) at %s", info.Version, info.APIVersion, info.OS, info.CPUs, info.Host)
		setupReport(ctx, d, cfg, w)
		for _, t := range cfg.Templates {
			ti, err := checkTemplate(ctx, d, t)
			switch {
			case err != nil:
				report(false, "template %s: image %s: %v", t.Name, ti.Image, err)
			case ti.Present:
				report(true, "template %s: image %s present%s", t.Name, ti.Image, ti.Note)
			default:
				// Not fatal: the first create pulls or builds it where a
				// registry answers.
				fmt.Fprintf(w, "warn template %s: image %s%s is not here; %s\n", t.Name, ti.Image, ti.Note, ti.Missing)
			}
		}
	}
	return true
}

// noEngineHints are where the engine's socket is on the usual setups.
const noEngineHints = `hint Docker Desktop, OrbStack, Colima, Rancher Desktop: start it (its docker context is found as the Docker CLI finds it: docker context ls)
hint Podman: DOCKER_HOST=unix://$(podman info --format '{{.Host.RemoteSocket.Path}}') (podman machine start first on macOS and Windows)
hint rootless Docker: DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock
`

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
	switch {
	case st.Kind == "Docker Desktop":
		info("docker desktop: workspace mounts need the data dir in a folder it shares with its VM (Settings > Resources > File sharing; /Users, /Volumes, /private, /tmp and /var/folders are shared by default on macOS)")
	case st.Kind == "Colima":
		info("colima: workspace mounts need the data dir in a folder mounted into its VM at the same path (your home by default; others: colima start --mount DIR:w)")
	case st.Rootless:
		info("rootless docker: CPU, memory and process limits need cgroup v2 with systemd delegating the cpu, memory and pids controllers to your user")
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
		info("disk limits: not checked (no template image present to check with)")
	} else {
		switch l, err := d.DiskLimits(ctx, image, nil); {
		case err != nil:
			warn("disk limits: could not check: %v", err)
		case l.Enforced:
			info("disk limits: enforced (storage driver %s): a sandbox's files cannot outgrow its disk", l.StorageDriver)
		default:
			warn("disk limits: not enforced on this engine: %s; rtemu measures running sandboxes' files (a few every %v, in turn) and records a \"disk\" event past a sandbox's disk", l.Why, sandbox.DefaultDiskWatch)
		}
	}
	if cfg.DataDir == "" {
		return
	}
	// Checked without making the data dir: where it is not made yet, on
	// the folder it will be made in.
	dir, what := cfg.DataDir, "the data dir "+cfg.DataDir
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
		what = dir + " (where the data dir " + cfg.DataDir + " will be made)"
	}
	var shared bool
	if image != "" {
		shared, err = d.SharesFolder(ctx, dir, image, nil)
	} else {
		// No image yet (a newcomer's state): an empty one of its own,
		// imported and removed.
		shared, err = d.SharesFolderWithoutImage(ctx, dir)
	}
	switch {
	case err != nil:
		warn("workspace mounts: could not check: %v", err)
	case shared:
		info("workspace mounts: the engine sees %s at the same path: mounts work", what)
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
