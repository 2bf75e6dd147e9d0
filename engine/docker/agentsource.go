package docker

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/rtemu-dev/rtemu/agent"
)

// Where the exec agent comes from. The agent is a Linux program of the
// engine's architecture, so it is, in this order:
//
//  1. one embedded in the executable: release builds (built with
//     -tags rtemu_agents after `go generate ./engine/docker`) carry
//     linux/amd64 and linux/arm64 agents;
//  2. one built from rtemu's source with the local Go toolchain, once, and
//     kept in the user's cache dir: what `go run .` and `go install` builds
//     use. It needs no network: the agent imports only the standard
//     library;
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
	AgentFromEmbedded = "embedded in rtemu"
	AgentFromBuild    = "built with the local Go toolchain"
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
	// cacheDir keeps built agents; "" is the user's cache dir.
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
	cache := how.cacheDir
	if cache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(dir, "rtemu", "agents")
		}
	}
	if b := embeddedAgent(goarch); b != nil {
		f, err := cachedAgentFiles(cache, "embedded-linux-"+goarch, b)
		if err == nil {
			info.Source, info.Path = AgentFromEmbedded, f.exe
			return f, info, true
		}
		why = append(why, "embedded agent: "+err.Error())
	}
	p, err := buildAgent(ctx, cache, goarch)
	if err == nil {
		var f *agentFiles
		if f, err = staticAgentFiles(p); err == nil {
			info.Source, info.Path = AgentFromBuild, p
			return f, info, true
		}
	}
	why = append(why, "building one: "+err.Error())
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

// cachedAgentFiles writes an embedded agent to the cache dir.
func cachedAgentFiles(cache, name string, b []byte) (*agentFiles, error) {
	p, err := writeCached(cache, name, b)
	if err != nil {
		return nil, err
	}
	return staticAgentFiles(p)
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

// writeCached writes b to the cache dir under a name made of its content's
// hash, once.
func writeCached(dir, name string, b []byte) (string, error) {
	if dir == "" {
		return "", errors.New("no cache dir")
	}
	sum := sha256.Sum256(b)
	p := filepath.Join(dir, "rtemu-agent-"+name+"-"+hex.EncodeToString(sum[:8]))
	if fi, err := os.Stat(p); err == nil && fi.Size() == int64(len(b)) {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-agent-*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o755)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return p, nil
}

// agentMain is the agent's own main package, for building it on its own.
const agentMain = "./agent/cmd/rtemu-agent"

// agentBuildTimeout bounds a build of the agent (the first one compiles the
// standard library for the target too).
const agentBuildTimeout = 5 * time.Minute

// buildAgent builds the agent for linux/goarch from rtemu's source with the
// local Go toolchain, keeping it in the cache dir under a name made of the
// agent's sources, so that it is built once per version of them.
func buildAgent(ctx context.Context, cache, goarch string) (string, error) {
	if cache == "" {
		return "", errors.New("no cache dir")
	}
	root, err := sourceRoot()
	if err != nil {
		return "", err
	}
	key, err := agentSourceKey(root, goarch)
	if err != nil {
		return "", err
	}
	p := filepath.Join(cache, "rtemu-agent-built-linux-"+goarch+"-"+key)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no Go toolchain on PATH to build it with")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(cache, fmt.Sprintf(".tmp-build-%s-%d", key, time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(ctx, agentBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, agentMain)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s in %s: %v: %s", agentMain, root, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return p, nil
}

// sourceRoot finds rtemu's source: where this file was compiled from (a
// checkout, for `go run .`), else the module cache's copy of the version
// this executable was built from (`go install …@version`).
func sourceRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // engine/docker/agentsource.go
		if isSourceRoot(root) {
			return root, nil
		}
	}
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Path != "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err == nil {
			root := filepath.Join(strings.TrimSpace(string(out)), bi.Main.Path+"@"+bi.Main.Version)
			if isSourceRoot(root) {
				return root, nil
			}
		}
	}
	return "", errors.New("rtemu's source is not on this machine (a release build without embedded agents?)")
}

func isSourceRoot(dir string) bool {
	_, err1 := os.Stat(filepath.Join(dir, "go.mod"))
	_, err2 := os.Stat(filepath.Join(dir, filepath.FromSlash(agentMain)))
	return err1 == nil && err2 == nil
}

// agentSourceKey names a build of the agent after its sources' names,
// sizes and times, the protocol version and the target.
func agentSourceKey(root, goarch string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", agent.Version, goarch)
	err := filepath.WalkDir(filepath.Join(root, "agent"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
