package docker

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/moby/moby/client"
	"github.com/rtemu-dev/rtemu/agent/dist"
)

// Where the exec agent comes from. The agent is a Linux program of the
// engine's architecture, so it is, in this order:
//
//  1. one embedded in the executable: release builds (built with
//     -tags rtemu_agents after `go generate ./agent/dist`) carry
//     linux/amd64 and linux/arm64 agents;
//  2. one built from rtemu's source with the local Go toolchain, once, and
//     kept in the user's cache dir: what `go run .` and `go install` builds
//     use. It needs no network: the agent imports only the standard
//     library and hashicorp/yamux, which building rtemu put in the module
//     cache;
//  3. rtemu's own executable, when rtemu is itself a Linux program of that
//     architecture (a Linux host, rtemu in a container) and neither of the
//     others can be had.
//
// The agent on its own is a static program of about 3 MB holding about
// 4 MB resident in a sandbox (bench: agent_rss); rtemu's whole executable,
// with its loader and C library, holds about 24 MB resident in every
// sandbox, so it comes last.
//
// When none of these can be had, every command runs by Docker exec, and
// ports are relayed by a shell in the sandbox (see ports.go); `rtemu
// doctor` says which it is.
const (
	AgentFromHost     = "host executable"
	AgentFromEmbedded = dist.FromEmbedded
	AgentFromBuild    = dist.FromBuild
)

// AgentInfo says which exec agent the driver puts into sandboxes.
type AgentInfo struct {
	// Source is one of the AgentFrom constants; "" when there is none.
	Source string `json:"source"`
	// Platform is the engine's, e.g. linux/arm64.
	Platform string `json:"platform"`
	Path     string `json:"path,omitempty"`
	// Error says why there is none.
	Error string `json:"error,omitempty"`
}

// agentFiles are the files the agent's volume holds: the agent's
// executable and, when it is dynamically linked, the loader and the
// libraries it has loaded, so it runs in any image, one without a C
// library included.
type agentFiles struct {
	exe    string
	interp string   // the ELF interpreter; "" for a static executable
	libs   []string // loaded shared libraries, the interpreter among them
	volume string   // named from the files' paths, sizes and times
}

// agentSourcing is what choosing the agent may use; tests change it.
type agentSourcing struct {
	// hostUnusable: act as if rtemu's executable could not run in the
	// engine's containers (macOS, Windows, another architecture).
	hostUnusable bool
	// hostFirst: take rtemu's executable before the others.
	hostFirst bool
	// cacheDir keeps built agents; "" is the user's cache dir
	// (dist.CacheDir).
	cacheDir string
}

// engineAgentPlatform asks the engine which OS and architecture its
// containers run, as GOOS and GOARCH.
func (d *Driver) engineAgentPlatform(ctx context.Context) (goos, goarch string, err error) {
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", "", wrap(err, "engine info")
	}
	return res.Info.OSType, goArch(res.Info.Architecture), nil
}

// goArch maps the engine's architecture names (uname's) to Go's.
func goArch(arch string) string {
	switch arch {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armhf":
		return "arm"
	case "i386", "i686":
		return "386"
	}
	return arch
}

// resolveAgent finds the agent for the engine's containers.
// final is false when the engine did not answer: ask again later.
func (d *Driver) resolveAgent(ctx context.Context, how agentSourcing) (_ *agentFiles, _ AgentInfo, final bool) {
	goos, goarch, err := d.engineAgentPlatform(ctx)
	info := AgentInfo{Platform: goos + "/" + goarch}
	if err != nil {
		info.Error = err.Error()
		return nil, info, false
	}
	if goos != "linux" {
		info.Error = "the engine runs " + goos + " containers; the exec agent is a Linux program"
		return nil, info, true
	}
	var why []string
	var files *agentFiles
	host := func() bool {
		if runtime.GOOS != "linux" || runtime.GOARCH != goarch || how.hostUnusable {
			return false
		}
		f, err := hostAgentFiles()
		if err != nil {
			why = append(why, "rtemu's executable: "+err.Error())
			return false
		}
		files, info.Source, info.Path = f, AgentFromHost, f.exe
		return true
	}
	if how.hostFirst && host() {
		return files, info, true
	}
	p, source, err := dist.Static(ctx, goarch, how.cacheDir)
	if err == nil {
		var f *agentFiles
		if f, err = staticAgentFiles(p); err == nil {
			info.Source, info.Path = source, p
			return f, info, true
		}
	}
	why = append(why, err.Error())
	if !how.hostFirst && host() {
		return files, info, true
	}
	info.Error = "no exec agent for " + info.Platform + " (" + strings.Join(why, "; ") + ")"
	return nil, info, ctx.Err() == nil
}

// hostAgentFiles is rtemu's own executable, with its loader and libraries
// when it has them.
func hostAgentFiles() (*agentFiles, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return nil, err
	}
	ef, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	f := &agentFiles{exe: exe}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, err
			}
			f.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if f.interp != "" {
		if f.libs, err = loadedLibraries(f.interp); err != nil {
			return nil, err
		}
	}
	return f, f.name()
}

// staticAgentFiles is a static agent executable on its own.
func staticAgentFiles(exe string) (*agentFiles, error) {
	f := &agentFiles{exe: exe}
	return f, f.name()
}

// name names the volume after the files' paths, sizes and times.
func (f *agentFiles) name() error {
	h := sha256.New()
	for _, p := range append([]string{f.exe}, f.libs...) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p, fi.Size(), fi.ModTime().UnixNano())
	}
	f.volume = "rtemu-agent-" + hex.EncodeToString(h.Sum(nil))[:16]
	return nil
}

// loadedLibraries lists the shared objects mapped into this process, and
// the interpreter.
func loadedLibraries(interp string) ([]string, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var libs []string
	add := func(p string) {
		if !seen[filepath.Base(p)] {
			seen[filepath.Base(p)] = true
			libs = append(libs, p)
		}
	}
	add(interp)
	for _, line := range strings.Split(string(maps), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 6 && strings.HasPrefix(fields[5], "/") && strings.Contains(filepath.Base(fields[5]), ".so") {
			add(fields[5])
		}
	}
	return libs, nil
}
