// Package dist gives rtemu's exec agent (package agent, its own program
// in agent/cmd/rtemu-agent) as a static Linux executable for an engine's
// architecture, whatever the engine: one embedded in rtemu (release
// builds), else one built from rtemu's source with the local Go toolchain,
// once, and cached. How the executable gets into a sandbox is the
// engine's: a volume on Docker, a copy through an exec on Kubernetes.
package dist

import (
	"context"
	"crypto/sha256"
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

	"github.com/rtemu-dev/rtemu/agent"
)

// Where an agent came from, as `rtemu doctor` says it.
const (
	FromEmbedded = "embedded in rtemu"
	FromBuild    = "built with the local Go toolchain"
)

// CacheDir is where agents are kept by default: rtemu/agents in the
// user's cache dir ("" when there is none).
func CacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "rtemu", "agents")
}

// Static returns the path of a static agent for linux/goarch, and where it
// came from: the one embedded in rtemu (written to cache once), else one
// built from rtemu's source into cache ("" is CacheDir()). The error says
// why neither could be had.
func Static(ctx context.Context, goarch, cache string) (path, source string, err error) {
	if cache == "" {
		cache = CacheDir()
	}
	var why []string
	if src := embedded(goarch); src != nil {
		p, err := writeCached(cache, "embedded-linux-"+goarch, src, embeddedName(goarch))
		if err == nil {
			return p, FromEmbedded, nil
		}
		why = append(why, "embedded agent: "+err.Error())
	}
	p, err := buildAgent(ctx, cache, goarch)
	if err == nil {
		return p, FromBuild, nil
	}
	why = append(why, "building one: "+err.Error())
	return "", "", errors.New(strings.Join(why, "; "))
}

// embeddedName is the name of the agent for linux/goarch among the
// embedded ones.
func embeddedName(goarch string) string { return "rtemu-agent-linux-" + goarch }

// writeCached writes the file src/file to the cache dir under a name made
// of its content's hash, once. It streams the file (hashing it, then
// copying it when the cache has no such file), so that the executable's
// embedded agents never sit on the heap.
func writeCached(dir, name string, src fs.FS, file string) (string, error) {
	if dir == "" {
		return "", errors.New("no cache dir")
	}
	h := sha256.New()
	size, err := copyFrom(h, src, file)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "rtemu-agent-"+name+"-"+hex.EncodeToString(h.Sum(nil)[:8]))
	if fi, err := os.Stat(p); err == nil && fi.Size() == size {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-agent-*")
	if err != nil {
		return "", err
	}
	_, err = copyFrom(tmp, src, file)
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

// copyFrom copies src/file to w.
func copyFrom(w io.Writer, src fs.FS, file string) (int64, error) {
	f, err := src.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
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
		root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // agent/dist/dist.go
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
// sizes and times, the module's dependencies (go.sum: the agent imports
// hashicorp/yamux), the protocol version and the target.
func agentSourceKey(root, goarch string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", agent.Version, goarch)
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	h.Write(sums)
	err = filepath.WalkDir(filepath.Join(root, "agent"), func(p string, e fs.DirEntry, err error) error {
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
