package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rtemu-dev/rtemu/state"
)

// swapJournalFile is the journal of a swap to the seed under way (a load's
// last steps, a reset to the seed): written, durably, before anything of
// the state changes, and removed once all of it has. A start that finds it
// finishes the swap (rolls it forward): the state is the seed's whole, as
// if the swap had ended, never part old and part new.
const swapJournalFile = "state-swap.json"

// swapJournal is what a swap under way needs to be finished.
type swapJournal struct {
	// Seed is the id of the seed the state becomes.
	Seed string `json:"seed"`
	// Staging is a load's folder (a name in the data dir) that becomes the
	// seed; "" for a reset to the seed already kept.
	Staging string `json:"staging,omitempty"`
	// Drop are the previous seed's images, removed once no container
	// uses them.
	Drop []string `json:"drop,omitempty"`
	// RecordsDone: the seed's records and workspaces are in; what is left
	// is making the sandboxes (a start's reconcile does) and Drop.
	RecordsDone bool `json:"recordsDone,omitempty"`
}

// crashEnv names a step of a load or a reset to the seed at which rtemu
// kills itself with SIGKILL. Only tests set it, to prove that a kill there
// leaves the old state or the new one whole (server/statecrash_test.go).
const crashEnv = "RTEMU_TEST_CRASH_AT"

// crashPoint kills this process, as kill -9 would, when a test asked for a
// crash at step.
func crashPoint(step string) {
	if os.Getenv(crashEnv) != step {
		return
	}
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	for {
		time.Sleep(time.Second)
	}
}

// writeJournal writes the journal durably: a kill (or a power cut, where
// the disk keeps its promises) leaves the old one or the new one whole.
func (s *Service) writeJournal(j swapJournal) error {
	b, _ := json.Marshal(j)
	file := filepath.Join(s.dataDir, swapJournalFile)
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("swap journal: %w", err)
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err == nil {
		err = syncDir(s.dataDir)
	}
	if err != nil {
		return fmt.Errorf("swap journal: %w", err)
	}
	return nil
}

func (s *Service) readJournal() (swapJournal, bool) {
	var j swapJournal
	b, err := os.ReadFile(filepath.Join(s.dataDir, swapJournalFile))
	if err != nil {
		return j, false
	}
	if err := json.Unmarshal(b, &j); err != nil {
		s.log.Error("the swap journal is not readable; a swap to the seed may be half done", "err", err)
		return j, false
	}
	return j, true
}

// pendingDrop is what a journal left by an earlier swap still has to drop
// (a start whose reconcile failed keeps it): a new journal takes it over.
func (s *Service) pendingDrop() []string {
	if j, ok := s.readJournal(); ok {
		return j.Drop
	}
	return nil
}

func (s *Service) removeJournal() error {
	err := os.Remove(filepath.Join(s.dataDir, swapJournalFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("swap journal: %w", err)
	}
	return syncDir(s.dataDir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// moveSeed makes a load's folder the seed, in place of the one before
// (which goes). Each step can be done again: a start after a kill between
// them finishes it.
func (s *Service) moveSeed(staging string) error {
	dir := filepath.Join(s.dataDir, seedDir)
	if _, err := os.Stat(staging); errors.Is(err, fs.ErrNotExist) {
		return nil // moved already
	}
	if _, err := os.Stat(dir); err == nil {
		prev := dir + ".old-" + newStateID()
		if err := os.Rename(dir, prev); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		crashPoint("load-seed-moved")
	}
	if err := os.Rename(staging, dir); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return syncDir(s.dataDir)
}

// swapRecords puts the seed's records and workspaces' files in place of
// the state's, in that order; each step can be done again. The containers
// of the records replaced are left to the caller (or a start's reconcile:
// they have no record now).
func (s *Service) swapRecords(ctx context.Context, m *state.Manifest) error {
	dir := filepath.Join(s.dataDir, seedDir)
	if err := s.store.ReplaceFrom(ctx, filepath.Join(dir, state.RecordsName)); err != nil {
		return err
	}
	crashPoint("swap-records")
	s.keys.forget()
	if ps, err := s.store.ListProjects(ctx); err == nil {
		for _, p := range ps {
			if p.IsDefault {
				s.defaultProject.Store(p.ID)
			}
		}
	}
	if s.ws.dir != "" {
		if err := s.removeWorkspaceFolders(ctx); err != nil {
			return fmt.Errorf("reset to the seed: %w", err)
		}
		for _, id := range m.Workspaces {
			if err := copyTree(filepath.Join(dir, "workspaces", id), filepath.Join(s.ws.dir, id)); err != nil {
				return fmt.Errorf("reset to the seed: workspace %s: %w", id, err)
			}
		}
	}
	return nil
}

// finishSwap, at a start, finishes a swap to the seed that a kill cut
// short: the seed in place, its records and workspaces' files in. The
// containers of the records it replaced have none now, and the start's
// reconcile removes them and makes the seed's sandboxes (creating). It
// returns the journal if there was one, for dropSwapped after the
// reconcile.
func (s *Service) finishSwap(ctx context.Context) (*swapJournal, error) {
	if s.dataDir == "" {
		return nil, nil
	}
	j, ok := s.readJournal()
	if !ok {
		return nil, nil
	}
	if j.RecordsDone {
		return &j, nil
	}
	s.log.Info("finishing a swap to the seed that was cut short", "seed", j.Seed)
	if j.Staging != "" {
		if err := s.moveSeed(filepath.Join(s.dataDir, j.Staging)); err != nil {
			return nil, err
		}
	}
	m := s.seedManifest()
	if m == nil || m.ID != j.Seed {
		// Never written so: the journal comes after the seed is whole.
		s.log.Error("a swap to the seed was cut short, and its seed is not in the data dir", "seed", j.Seed)
		return nil, s.removeJournal()
	}
	// Every container of this rtemu goes first: the records that named
	// them are replaced, and one the seed's sandbox has the name of (a
	// reset to the seed makes the same names again) must not be taken for
	// the seed's.
	cs, err := s.engine.List(ctx, map[string]string{LabelInstance: s.instance})
	if err != nil {
		return nil, s.engineErr(err)
	}
	for _, c := range cs {
		if err := s.engine.Remove(ctx, c.Name); err != nil {
			return nil, s.engineErr(err)
		}
	}
	if err := s.swapRecords(ctx, m); err != nil {
		return nil, err
	}
	j.RecordsDone = true
	if err := s.writeJournal(j); err != nil {
		return nil, err
	}
	return &j, nil
}

// dropSwapped ends a swap: the previous seed's images go (no container uses
// them now), then the journal.
func (s *Service) dropSwapped(ctx context.Context, j *swapJournal) {
	if j == nil {
		return
	}
	keep := s.seedImages()
	for _, ref := range j.Drop {
		if keep[ref] {
			continue
		}
		if err := s.engine.RemoveImage(context.WithoutCancel(ctx), ref); err != nil {
			s.log.Warn("could not remove the previous seed's image", "image", ref, "err", err)
		}
	}
	crashPoint("swap-dropped")
	if err := s.removeJournal(); err != nil {
		s.log.Warn("could not remove the swap journal", "err", err)
	}
}
