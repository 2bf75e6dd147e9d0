package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/state"
)

// StateStore is what state archives need of the store (docs/state.md).
type StateStore interface {
	// Schema is the records' schema this store writes.
	Schema() int
	// SnapshotTo writes the whole database to a new file as of one moment.
	SnapshotTo(ctx context.Context, file string) error
	// PrepareRecords opens a database file of an archive, migrates it to
	// this schema (refusing a newer one) and applies fn to every sandbox
	// record in it.
	PrepareRecords(ctx context.Context, file string, fn func(*Sandbox) error) error
	// ReplaceFrom makes the store's records those of the file, in one
	// transaction.
	ReplaceFrom(ctx context.Context, file string) error
}

// The folders of a data dir that state archives use.
const (
	// seedDir keeps the last state loaded, for a reset to it: its manifest,
	// records (ready to load) and workspaces' files. Its images stay in the
	// engine.
	seedDir = "seed"
	// Folders of a save or a load under way; one a kill left is removed at
	// the next start.
	saveTmpPrefix = "state-save-"
	loadTmpPrefix = "state-load-"
	// snapshotRepo names the images of sandboxes' file systems.
	snapshotRepo = "rtemu-state/"
	// LabelState marks those images with their archive's id.
	LabelState = "rtemu.state"
)

// snapshotSlots is how many containers a save snapshots at once.
const snapshotSlots = 4

// SavedState is a state captured at one moment (PrepareSave), ready to be
// written as an archive any number of times until Close.
type SavedState struct {
	s        *Service
	dir      string
	manifest state.Manifest
}

// unsavable is the refusal of a save naming each sandbox it cannot capture.
func unsavable(why []string) error {
	return &Error{Kind: KindConflict, Message: "the state cannot be saved: " + strings.Join(why, "; ")}
}

func newStateID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hasContainer says whether a sandbox of this status has a container whose
// files a save captures.
func hasContainer(st Status) bool {
	switch st {
	case StatusRunning, StatusPaused, StatusPausing, StatusResuming:
		return true
	}
	return false
}

// SaveOptions are a save's choices.
type SaveOptions struct {
	// ReferenceImages: each snapshot's base image (the one its sandbox
	// was made from) is referred to by name instead of being in the
	// archive, where the engine has it; a load needs it in its engine.
	ReferenceImages bool
}

// PrepareSave captures the state: the records as of one moment, a
// snapshot of each sandbox's container, and a copy of each workspace's
// files. The caller keeps API writes out while it runs (the front door's
// gate), so none is half in it; writing the archive (WriteTo) needs no such
// pause. Where the engine cannot capture a sandbox's files, the save is
// refused, naming each such sandbox.
func (s *Service) PrepareSave(ctx context.Context, rtemuVersion string, opts SaveOptions) (_ *SavedState, err error) {
	base := s.dataDir
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, saveTmpPrefix)
	if err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	ss := &SavedState{s: s, dir: dir, manifest: state.Manifest{
		ID: newStateID(), RtemuVersion: rtemuVersion, CreatedAt: s.now(), Engine: s.caps.Name,
		Schema: s.store.Schema(), Sandboxes: []state.Sandbox{}, Workspaces: []string{}, Images: []string{},
	}}
	defer func() {
		if err != nil {
			ss.Close()
		}
	}()
	s.flushEvents() // the activity so far is in the records
	records := filepath.Join(dir, state.RecordsName)
	if err := s.store.SnapshotTo(ctx, records); err != nil {
		return nil, err
	}
	var sbs []*Sandbox
	if err := s.store.PrepareRecords(ctx, records, func(sb *Sandbox) error {
		cp := *sb
		sbs = append(sbs, &cp)
		return nil
	}); err != nil {
		return nil, err
	}
	var cannot []string
	var toSnap []*Sandbox
	seed := s.seedManifest()
	bases := map[string]bool{}
	for _, sb := range sbs {
		e := state.Sandbox{ID: sb.ID, Name: sb.Name, Status: string(sb.Status), Template: sb.Template, Capture: state.CaptureNone}
		if hasContainer(sb.Status) {
			if !s.caps.Snapshot {
				cannot = append(cannot, fmt.Sprintf("sandbox %s (%s): %s cannot capture its file system", sb.ID, sb.Status, s.theEngine()))
				continue
			}
			e.Capture, e.Image = state.CaptureSnapshot, snapshotRepo+sb.ID+":"+ss.manifest.ID
			ss.manifest.Images = append(ss.manifest.Images, e.Image)
			toSnap = append(toSnap, sb)
			if opts.ReferenceImages {
				e.Base = s.baseImage(ctx, sb, seed, bases)
			}
		}
		ss.manifest.Sandboxes = append(ss.manifest.Sandboxes, e)
	}
	if len(cannot) > 0 {
		return nil, unsavable(cannot)
	}
	for ref := range bases {
		ss.manifest.Referenced = append(ss.manifest.Referenced, ref)
	}
	slices.Sort(ss.manifest.Referenced)
	// A few at once: each commit waits on the engine's disk and hashing,
	// and every running sandbox is frozen while its own runs.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, snapshotSlots)
	)
	for _, sb := range toSnap {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			ref := snapshotRepo + sb.ID + ":" + ss.manifest.ID
			err := s.engine.Snapshot(ctx, sb.ContainerName(), ref, map[string]string{LabelState: ss.manifest.ID})
			if errors.Is(err, engine.ErrNotFound) {
				err = conflict("the state cannot be saved: sandbox %s's container went away during the save; save again", sb.ID)
			} else if err != nil {
				err = s.engineErr(err)
			}
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if s.ws.dir != "" {
		ents, err := os.ReadDir(s.ws.dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("save: workspaces: %w", err)
		}
		for _, e := range ents {
			if !e.IsDir() || strings.HasPrefix(e.Name(), trashPrefix) {
				continue
			}
			if err := copyTree(filepath.Join(s.ws.dir, e.Name()), filepath.Join(dir, "workspaces", e.Name())); err != nil {
				return nil, fmt.Errorf("save: workspace %s: %w", e.Name(), err)
			}
			ss.manifest.Workspaces = append(ss.manifest.Workspaces, e.Name())
		}
	}
	if s.dataDir != "" {
		if key, err := os.ReadFile(filepath.Join(s.dataDir, SecretKeyFile)); err == nil {
			sum := sha256.Sum256(key)
			ss.manifest.SecretKey = hex.EncodeToString(sum[:8])
		}
	}
	return ss, nil
}

// baseImage is the image a sandbox's snapshot is built on, by the name a
// save refers to it with (and records in bases): the image the sandbox was
// made from, or, for one made from a seed's snapshot, the image the seed
// referred to, or else its template's image. "" when the engine has no
// image of that name (then the archive holds it).
func (s *Service) baseImage(ctx context.Context, sb *Sandbox, seed *state.Manifest, bases map[string]bool) string {
	ref := sb.Image
	if strings.HasPrefix(ref, snapshotRepo) {
		ref = s.templates[sb.Template].Image
		if seed != nil {
			for _, e := range seed.Sandboxes {
				if e.Image == sb.Image && e.Base != "" {
					ref = e.Base
				}
			}
		}
	}
	if ref == "" || strings.HasPrefix(ref, snapshotRepo) {
		return ""
	}
	if ok, err := s.engine.ImagePresent(ctx, ref); err != nil || !ok {
		return ""
	}
	bases[ref] = true
	return ref
}

// Manifest is what the archive's manifest says.
func (ss *SavedState) Manifest() state.Manifest { return ss.manifest }

// WriteTo writes the archive to w.
func (ss *SavedState) WriteTo(ctx context.Context, w io.Writer) error {
	aw, err := state.NewWriter(w, ss.manifest)
	if err != nil {
		return err
	}
	if err := aw.Records(filepath.Join(ss.dir, state.RecordsName)); err != nil {
		return err
	}
	for _, id := range ss.manifest.Workspaces {
		if err := aw.Workspace(id, filepath.Join(ss.dir, "workspaces", id)); err != nil {
			return err
		}
	}
	if len(ss.manifest.Images) > 0 {
		pr, pw := io.Pipe()
		opts := engine.SaveOptions{Without: ss.manifest.Referenced, Dir: ss.dir}
		go func() { pw.CloseWithError(ss.s.engine.SaveImages(ctx, ss.manifest.Images, opts, pw)) }()
		err := aw.Images(pr)
		pr.CloseWithError(errors.New("the archive's writer stopped"))
		if err != nil {
			return err
		}
	}
	return aw.Close()
}

// Close removes what the save made: its folder and its images (the
// archive has them).
func (ss *SavedState) Close() {
	if err := os.RemoveAll(ss.dir); err != nil {
		ss.s.log.Warn("could not remove a save's folder", "dir", ss.dir, "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seed := ss.s.seedImages()
	for _, ref := range ss.manifest.Images {
		if seed[ref] {
			continue
		}
		if err := ss.s.engine.RemoveImage(ctx, ref); err != nil {
			ss.s.log.Warn("could not remove a save's image", "image", ref, "err", err)
		}
	}
}

// LoadResult says what a load brought back.
type LoadResult struct {
	Manifest  state.Manifest
	Sandboxes int
}

// LoadState replaces the whole state with an archive's and keeps it as the
// seed (ResetToSeed returns to it). The archive is read and checked into a
// folder of its own (and its images into the engine) before anything of
// the state changes: a bad archive, or a load that fails or is killed
// before its end, changes nothing and leaves nothing (a folder or images a
// kill left go at the next start). Then, as a reset does, every sandbox and
// record goes, the archive's records come in one transaction, its
// workspaces' files take their place, and its sandboxes are made from
// their snapshots: those saved running run (their processes start afresh),
// those saved paused are paused. The caller keeps other requests out while
// it runs.
func (s *Service) LoadState(ctx context.Context, r io.Reader) (*LoadResult, error) {
	if s.dataDir == "" {
		return nil, &Error{Kind: KindInvalid, Message: "loading a state needs a data dir"}
	}
	staging, err := os.MkdirTemp(s.dataDir, loadTmpPrefix)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var m state.Manifest
	var loaded []string // images the load brought into the engine
	fail := func(err error) (*LoadResult, error) {
		s.dropLoad(staging, loaded)
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(staging, "workspaces"), 0o755); err != nil {
		return fail(err)
	}
	gotRecords := false
	began := time.Now()
	err = state.Read(r, state.Handler{
		Manifest: func(man state.Manifest) error {
			m = man
			if m.Schema > s.store.Schema() {
				return &state.FormatError{Kind: state.Newer, Msg: fmt.Sprintf("the archive's records are of a newer rtemu (schema %d; this one reads up to %d): use a newer rtemu", m.Schema, s.store.Schema())}
			}
			if len(m.Images) > 0 && !s.caps.Snapshot {
				return conflict("the archive holds sandboxes' file systems and %s cannot load them", s.theEngine())
			}
			if err := s.checkReferenced(ctx, m.Referenced); err != nil {
				return err
			}
			// Written first, so a start after a kill knows which images
			// this load may have brought.
			b, _ := json.Marshal(m)
			if err := os.WriteFile(filepath.Join(staging, state.ManifestName), b, 0o600); err != nil {
				return err
			}
			seed := s.seedImages()
			for _, ref := range m.Images {
				if !seed[ref] {
					loaded = append(loaded, ref)
				}
			}
			return nil
		},
		Records: func(rd io.Reader) error {
			gotRecords = true
			f, err := os.OpenFile(filepath.Join(staging, state.RecordsName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, rd)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		},
		Workspaces: filepath.Join(staging, "workspaces"),
		Images:     func(rd io.Reader) error { return s.engine.LoadImages(ctx, rd) },
	})
	if err != nil {
		return fail(err)
	}
	if !gotRecords {
		return fail(&state.FormatError{Kind: state.Corrupt, Msg: "the archive is corrupt: it has no records (" + state.RecordsName + ")"})
	}
	for _, ref := range m.Images {
		if ok, err := s.engine.ImagePresent(ctx, ref); err != nil || !ok {
			return fail(&state.FormatError{Kind: state.Corrupt, Msg: "the archive is corrupt: image " + ref + " of its manifest is not in it"})
		}
	}
	captured := map[string]state.Sandbox{}
	for _, e := range m.Sandboxes {
		captured[e.ID] = e
	}
	if err := s.store.PrepareRecords(ctx, filepath.Join(staging, state.RecordsName), func(sb *Sandbox) error {
		return restoredRecord(sb, captured[sb.ID], s.instance)
	}); err != nil {
		return fail(&state.FormatError{Kind: state.Corrupt, Msg: "the archive's records cannot be read: " + err.Error()})
	}
	// The archive is whole and ready: it becomes the seed, and the state
	// the seed's. From the journal on, a kill is finished by the next start
	// (finishSwap); before it, the next start removes the load's folder and
	// images (clearStateLeftovers).
	var drop []string // the previous seed's images the new one does not have
	if old := s.seedManifest(); old != nil {
		for _, ref := range old.Images {
			if !slices.Contains(m.Images, ref) {
				drop = append(drop, ref)
			}
		}
	}
	crashPoint("load-read")
	j := swapJournal{Seed: m.ID, Staging: filepath.Base(staging), Drop: append(drop, s.pendingDrop()...)}
	if err := s.writeJournal(j); err != nil {
		return fail(err)
	}
	crashPoint("load-journaled")
	if err := s.moveSeed(staging); err != nil {
		_ = s.removeJournal()
		return fail(err)
	}
	s.removeOldSeeds()
	read := time.Since(began)
	n, err := s.swapToSeed(ctx, j)
	if err != nil {
		return nil, err
	}
	s.log.Info("state loaded", "id", m.ID, "sandboxes", n, "read", read.Round(time.Millisecond),
		"made", (time.Since(began) - read).Round(time.Millisecond))
	return &LoadResult{Manifest: m, Sandboxes: n}, nil
}

// checkReferenced refuses an archive that refers to images the engine does
// not have, naming them, before anything is loaded.
func (s *Service) checkReferenced(ctx context.Context, refs []string) error {
	var missing []string
	for _, ref := range refs {
		ok, err := s.engine.ImagePresent(ctx, ref)
		if err != nil {
			return s.engineErr(err)
		}
		if !ok {
			missing = append(missing, ref)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Message: fmt.Sprintf("the archive was saved referring to images by name and %s does not have %s: pull or build them first (or save the archive without referring to images)",
		s.theEngine(), strings.Join(missing, ", "))}
}

// restoredRecord is a sandbox record as a load brings it back: one saved
// with its container is made anew from its snapshot (creating, its image
// the snapshot's; PausedAt kept says to pause it once made); one caught
// being made is made again; one caught being destroyed is destroyed.
//
// Its container is named after this rtemu's instance too: the sandbox's id
// is the saved one, and the rtemu that saved it (or another that loaded the
// archive) may use the same engine.
func restoredRecord(sb *Sandbox, e state.Sandbox, instance string) error {
	sb.Container = "rtemu-" + sb.ID + "-" + instance
	switch {
	case e.Capture == state.CaptureSnapshot:
		paused := sb.Status == StatusPaused || sb.Status == StatusPausing
		sb.Status, sb.Image, sb.IP, sb.Error, sb.Progress = StatusCreating, e.Image, "", "", ""
		if !paused {
			sb.PausedAt, sb.PausedBy = nil, ""
		} else if sb.PausedAt == nil {
			t := time.Now().UTC()
			sb.PausedAt = &t
		}
	case sb.Status == StatusCreating:
		sb.PausedAt, sb.IP = nil, ""
	case sb.Status == StatusDestroying:
		sb.Status = StatusDestroyed
	case hasContainer(sb.Status):
		return fmt.Errorf("sandbox %s is %s but the archive has no capture of it", sb.ID, sb.Status)
	}
	return nil
}

// removeOldSeeds removes the seeds a load replaced.
func (s *Service) removeOldSeeds() {
	old, _ := filepath.Glob(filepath.Join(s.dataDir, seedDir+".old-*"))
	for _, dir := range old {
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("could not remove a replaced seed's folder", "dir", dir, "err", err)
		}
	}
}

// seedManifest is the manifest of the seed kept in the data dir; nil for
// none.
func (s *Service) seedManifest() *state.Manifest {
	if s.dataDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, seedDir, state.ManifestName))
	if err != nil {
		return nil
	}
	var m state.Manifest
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return &m
}

func (s *Service) seedImages() map[string]bool {
	out := map[string]bool{}
	if m := s.seedManifest(); m != nil {
		for _, ref := range m.Images {
			out[ref] = true
		}
	}
	return out
}

// Seed is the manifest of the state a reset to the seed returns to; nil
// for none.
func (s *Service) Seed() *state.Manifest { return s.seedManifest() }

// HasSeed says whether a state was loaded, so a reset can go back to it.
func (s *Service) HasSeed() bool { return s.seedManifest() != nil }

// ResetToSeed brings rtemu back to the last state loaded: a reset, then
// the seed's records, its workspaces' files and its sandboxes, made from
// the snapshots the engine kept (nothing is read or imported again). It
// returns how many sandboxes it brought back and waits until each is
// running, paused or failed. The caller keeps other requests out.
func (s *Service) ResetToSeed(ctx context.Context) (int, error) {
	m := s.seedManifest()
	if m == nil {
		return 0, conflict("no seed is loaded: start rtemu with --seed FILE, or load one with rtemu state load FILE")
	}
	j := swapJournal{Seed: m.ID, Drop: s.pendingDrop()}
	if err := s.writeJournal(j); err != nil {
		return 0, err
	}
	return s.swapToSeed(ctx, j)
}

// swapToSeed makes the state the seed's, under the journal j written
// before: every container and record goes, the seed's records come in one
// transaction and its workspaces' files after (then the journal says so),
// and its sandboxes are made; then the previous seed's images go, and the
// journal. A kill anywhere in it leaves the journal, and the next start
// finishes the swap.
func (s *Service) swapToSeed(ctx context.Context, j swapJournal) (int, error) {
	m := s.seedManifest()
	if m == nil {
		return 0, conflict("no seed is loaded")
	}
	began := time.Now()
	if _, err := s.Reset(ctx); err != nil {
		return 0, err
	}
	crashPoint("swap-cleared")
	cleared := time.Since(began)
	s.suspendPool()
	defer s.resumePool()
	if err := s.swapRecords(ctx, m); err != nil {
		return 0, err
	}
	j.RecordsDone = true
	if err := s.writeJournal(j); err != nil {
		return 0, err
	}
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return 0, err
	}
	copied := time.Since(began)
	var making []string
	for _, sb := range live {
		if sb.Status == StatusCreating {
			s.startProvision(sb)
			making = append(making, sb.ID)
		}
		s.Publish(Change{Kind: "sandbox", ID: sb.ID, Status: sb.Status})
	}
	// Wait until every one is made (and paused where it was).
	for i, id := range making {
		for {
			sb, err := s.store.GetSandbox(ctx, id)
			if err != nil {
				return 0, err
			}
			if sb.Status != StatusCreating && sb.Status != StatusPausing && !s.isProvisioning(id) {
				break
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		if i == 0 {
			crashPoint("swap-making")
		}
	}
	s.dropSwapped(ctx, &j)
	s.log.Info("reset to the seed", "seed", m.ID, "sandboxes", len(making), "cleared", cleared.Round(time.Millisecond),
		"records", (copied - cleared).Round(time.Millisecond), "made", (time.Since(began) - copied).Round(time.Millisecond))
	return len(making), nil
}

// dropLoad removes what a load that did not finish made: its folder and
// the images it brought.
func (s *Service) dropLoad(staging string, images []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ref := range images {
		if err := s.engine.RemoveImage(ctx, ref); err != nil && !errors.Is(err, engine.ErrUnsupported) {
			s.log.Warn("could not remove an image of a failed load", "image", ref, "err", err)
		}
	}
	if err := os.RemoveAll(staging); err != nil {
		s.log.Warn("could not remove a failed load's folder", "dir", staging, "err", err)
	}
}

// clearStateLeftovers removes the folders (and a load's images) of saves
// and loads a kill interrupted.
func (s *Service) clearStateLeftovers(ctx context.Context) {
	if s.dataDir == "" {
		return
	}
	ents, err := os.ReadDir(s.dataDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		dir := filepath.Join(s.dataDir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), loadTmpPrefix):
			var images []string
			if b, err := os.ReadFile(filepath.Join(dir, state.ManifestName)); err == nil {
				var m state.Manifest
				if json.Unmarshal(b, &m) == nil {
					seed := s.seedImages()
					for _, ref := range m.Images {
						if !seed[ref] {
							images = append(images, ref)
						}
					}
				}
			}
			s.log.Info("removing what an interrupted state load left", "dir", dir, "images", len(images))
			s.dropLoad(dir, images)
		case strings.HasPrefix(e.Name(), saveTmpPrefix), strings.HasPrefix(e.Name(), seedDir+".old-"), e.Name() == swapJournalFile+".tmp":
			_ = os.RemoveAll(dir)
		}
	}
}

// copyTree copies a folder's files, folders and symbolic links (as links).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case info.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			return err
		}
		return nil
	})
}

// SeedID is the id of the seed kept in the data dir; "" for none.
func (s *Service) SeedID() string {
	if m := s.seedManifest(); m != nil {
		return m.ID
	}
	return ""
}

// Empty says whether rtemu holds no live sandbox and no workspace.
func (s *Service) Empty(ctx context.Context) (bool, error) {
	live, err := s.store.LiveSandboxes(ctx)
	if err != nil {
		return false, err
	}
	if len(live) > 0 {
		return false, nil
	}
	ws, _, err := s.ListWorkspaces(ctx)
	if err != nil {
		return false, err
	}
	return len(ws) == 0, nil
}

// RemoveSeedImages removes the seed's images from the engine (an rtemu that
// removes everything at exit: --ephemeral, tests).
func (s *Service) RemoveSeedImages(ctx context.Context) {
	for ref := range s.seedImages() {
		if err := s.engine.RemoveImage(ctx, ref); err != nil {
			s.log.Warn("could not remove a seed's image", "image", ref, "err", err)
		}
	}
}
