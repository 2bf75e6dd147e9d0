package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// lockFile, in the data dir, is held (flock) by the rtemu serving it and
// says who that is and where it listens.
const lockFile = "rtemu.lock"

// ephemeralPrefix names the temporary data dirs of --ephemeral rtemus.
const ephemeralPrefix = "rtemu-ephemeral-"

// Holder is what the rtemu holding a data dir's lock wrote in it.
type Holder struct {
	PID       int    `json:"pid"`
	URL       string `json:"url,omitempty"`
	SSHAddr   string `json:"sshAddr,omitempty"`
	Instance  string `json:"instance,omitempty"`
	Engine    string `json:"engine,omitempty"`
	Ephemeral bool   `json:"ephemeral,omitempty"`
}

// InUseError is a start on a data dir another rtemu serves.
type InUseError struct {
	DataDir string
	Holder  Holder
}

func (e *InUseError) Error() string {
	where := "still starting"
	if e.Holder.URL != "" {
		where = "API " + e.Holder.URL + ", SSH " + e.Holder.SSHAddr
	}
	return fmt.Sprintf("another rtemu (pid %d) serves the data dir %s: %s; stop it, or give this one another --data-dir (or --ephemeral)",
		e.Holder.PID, e.DataDir, where)
}

// dirLock is a held data dir lock.
type dirLock struct {
	f      *os.File
	holder Holder
}

// lockDir takes dir's lock, or fails with *InUseError naming its holder.
func lockDir(dir string) (*dirLock, error) {
	l, held, err := tryLockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lock the data dir: %w", err)
	}
	if held != nil {
		return nil, &InUseError{DataDir: dir, Holder: *held}
	}
	l.holder = Holder{PID: os.Getpid()}
	return l, l.write()
}

// tryLockDir takes dir's lock if it is free; else it returns what the
// holder wrote.
func tryLockDir(dir string) (*dirLock, *Holder, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	held, err := tryLock(f)
	if err != nil || held {
		f.Close()
		h := readHolder(dir)
		return nil, &h, err
	}
	return &dirLock{f: f}, nil, nil
}

func readHolder(dir string) Holder {
	var h Holder
	b, _ := os.ReadFile(filepath.Join(dir, lockFile))
	_ = json.Unmarshal(b, &h)
	return h
}

// update changes what the lock says and writes it.
func (l *dirLock) update(fn func(*Holder)) error {
	if l == nil {
		return nil
	}
	fn(&l.holder)
	return l.write()
}

func (l *dirLock) write() error {
	b, err := json.Marshal(l.holder)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err = l.f.WriteAt(append(b, '\n'), 0)
	return err
}

// release lets the data dir go (closing the file drops the lock).
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Swept is what a sweep removed: one dead --ephemeral rtemu's leftovers.
type Swept struct {
	Dir        string
	PID        int
	Containers []string
}

// sweepEphemeral removes the containers and the folders of --ephemeral
// rtemus whose process died (their lock is free), as far as eng, the
// engine at engineHost, sees them. It touches nothing of a live rtemu, of
// one on another engine, or of a folder whose owner is unknown (an rtemu
// older than the lock, or one being made this moment).
func sweepEphemeral(ctx context.Context, eng engine.Engine, engineHost string) ([]Swept, error) {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), ephemeralPrefix+"*"))
	if err != nil {
		return nil, err
	}
	var out []Swept
	var errs []error
	for _, dir := range dirs {
		fi, err := os.Stat(filepath.Join(dir, lockFile))
		if err != nil {
			continue
		}
		l, held, err := tryLockDir(dir)
		if err != nil || held != nil {
			continue
		}
		h := readHolder(dir)
		// A lock with nothing in it yet may be an rtemu that has just made
		// it and is about to take it.
		young := h.PID == 0 && time.Since(fi.ModTime()) < time.Minute
		if young || !h.Ephemeral && h.PID != 0 || h.Engine != "" && h.Engine != engineHost {
			_ = l.release()
			continue
		}
		s := Swept{Dir: dir, PID: h.PID}
		failed := false
		if h.Instance != "" {
			cs, err := eng.List(ctx, map[string]string{sandbox.LabelInstance: h.Instance})
			if err != nil {
				_ = l.release()
				errs = append(errs, fmt.Errorf("%s: %w", dir, err))
				continue
			}
			for _, c := range cs {
				if err := eng.Remove(ctx, c.Name); err != nil {
					errs = append(errs, fmt.Errorf("%s: remove %s: %w", dir, c.Name, err))
					failed = true
					continue
				}
				s.Containers = append(s.Containers, c.Name)
			}
		}
		// Released before the folder goes: Windows removes no open file.
		_ = l.release()
		if !failed {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// disposablePrefix names the markers of rtemus whose containers go at
// Close though their data dir is not ephemeral (tests' in-process rtemus):
// a marker names the data dir and instance, so that the containers of one
// whose process died (a test binary's timeout) are swept too.
const disposablePrefix = "rtemu-disposable-"

// disposable is a marker's content.
type disposable struct {
	DataDir  string `json:"dataDir"`
	Instance string `json:"instance"`
	Engine   string `json:"engine"`
}

func (s *Server) disposableMarker() string {
	if s.closeEngine == nil || s.cfg.Ephemeral || s.lock == nil || s.lock.holder.Instance == "" {
		// In-memory engines leak nothing; ephemeral dirs are swept as such.
		return ""
	}
	return filepath.Join(os.TempDir(), disposablePrefix+s.lock.holder.Instance+".json")
}

func (s *Server) markDisposable() {
	m := s.disposableMarker()
	if m == "" {
		return
	}
	b, err := json.Marshal(disposable{DataDir: s.DataDir, Instance: s.lock.holder.Instance, Engine: s.lock.holder.Engine})
	if err == nil {
		err = os.WriteFile(m, b, 0o600)
	}
	if err != nil {
		s.log.Warn("could not mark the containers as disposable; a kill leaves them until removed by hand", "err", err)
	}
}

func (s *Server) unmarkDisposable() {
	if m := s.disposableMarker(); m != "" {
		_ = os.Remove(m)
	}
}

// sweepDisposable removes the containers of disposable rtemus whose process
// died (their data dir's lock is free, or the data dir is gone), and their
// data dir where it is a temporary one.
func sweepDisposable(ctx context.Context, eng engine.Engine, engineHost string) ([]Swept, error) {
	markers, err := filepath.Glob(filepath.Join(os.TempDir(), disposablePrefix+"*.json"))
	if err != nil {
		return nil, err
	}
	var out []Swept
	var errs []error
	for _, m := range markers {
		var d disposable
		b, err := os.ReadFile(m)
		if err != nil || json.Unmarshal(b, &d) != nil || d.Instance == "" || d.Engine != engineHost {
			continue
		}
		l, held, err := tryLockDir(d.DataDir)
		if held != nil || err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s := Swept{Dir: d.DataDir}
		failed := false
		cs, err := eng.List(ctx, map[string]string{sandbox.LabelInstance: d.Instance})
		if err != nil {
			errs = append(errs, err)
			failed = true
		}
		for _, c := range cs {
			if err := eng.Remove(ctx, c.Name); err != nil {
				errs = append(errs, fmt.Errorf("%s: remove %s: %w", d.DataDir, c.Name, err))
				failed = true
				continue
			}
			s.Containers = append(s.Containers, c.Name)
		}
		_ = l.release()
		if failed {
			continue
		}
		if rel, err := filepath.Rel(os.TempDir(), d.DataDir); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
			_ = os.RemoveAll(d.DataDir)
		}
		_ = os.Remove(m)
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// claim writes in the lock whose data dir and engine this is; on the
// Docker engine it sweeps what dead rtemus left, and warns of templates
// whose image is not here.
func (s *Server) claim(ctx context.Context, eng engine.Engine, engineHost string) {
	if err := s.lock.update(func(h *Holder) {
		h.Instance, h.Engine, h.Ephemeral = s.store.InstanceID(), engineHost, s.cfg.Ephemeral
	}); err != nil {
		s.log.Warn("could not write the data dir's lock file", "err", err)
	}
	if s.closeEngine != nil {
		sweepAtStart(ctx, eng, engineHost, s.log)
		warnMissingImages(ctx, eng, s.cfg.Templates, s.log)
	}
}

// sweep removes what dead ephemeral and disposable rtemus left.
func sweep(ctx context.Context, eng engine.Engine, engineHost string) ([]Swept, error) {
	a, errA := sweepEphemeral(ctx, eng, engineHost)
	b, errB := sweepDisposable(ctx, eng, engineHost)
	return append(a, b...), errors.Join(errA, errB)
}

// sweepAtStart is the sweep every start of rtemu does, logged.
func sweepAtStart(ctx context.Context, eng engine.Engine, engineHost string, log *slog.Logger) {
	swept, err := sweep(ctx, eng, engineHost)
	for _, s := range swept {
		log.Info("removed what a dead --ephemeral rtemu left", "pid", s.PID, "dir", s.Dir, "containers", len(s.Containers))
	}
	if err != nil {
		log.Warn("could not remove all that dead --ephemeral rtemus left (rtemu gc tries again)", "err", err)
	}
}

// GC removes what dead --ephemeral rtemus left on the Docker engine and
// in the temporary folder, saying what, and fails when something stays.
func GC(ctx context.Context, w io.Writer) error {
	d, err := docker.New()
	if err != nil {
		return err
	}
	defer d.Close()
	swept, err := sweep(ctx, d.Engine(), d.Host())
	for _, s := range swept {
		if s.PID != 0 {
			fmt.Fprintf(w, "removed %s of rtemu pid %d (gone) and its %d container(s)\n", s.Dir, s.PID, len(s.Containers))
		} else {
			fmt.Fprintf(w, "removed the %d container(s) of %s (a test's rtemu, gone)\n", len(s.Containers), s.Dir)
		}
	}
	if len(swept) == 0 && err == nil {
		fmt.Fprintln(w, "nothing to remove: no --ephemeral rtemu died leaving anything")
	}
	return err
}

// Leftovers says which sandboxes keep running after this rtemu stops and
// how to remove them ("" when none do, or Close removes them).
func (s *Server) Leftovers(ctx context.Context) string {
	if s.removeAll || s.svc == nil {
		return ""
	}
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil || len(live) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rtemu stops; %d sandbox(es) keep running, and the next `rtemu serve --data-dir %s` takes them back:\n", len(live), s.DataDir)
	for _, sb := range live {
		name := ""
		if sb.Name != "" {
			name = " (" + sb.Name + ")"
		}
		fmt.Fprintf(&b, "  %s%s %s\n", sb.ID, name, sb.Status)
	}
	fmt.Fprintf(&b, "Remove them: with rtemu running, `rtemu sandbox destroy ID…`; or now, on Docker:\n"+
		"  docker rm -f $(docker ps -aq --filter label=%s=%s)\n", sandbox.LabelInstance, s.store.InstanceID())
	return b.String()
}
