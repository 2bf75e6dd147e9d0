package server

import (
	"context"
	"fmt"
	"os"

	"github.com/rtemu-dev/rtemu/state"
)

// loadSeed loads --seed before anything is served. A data dir already
// seeded from the same archive keeps its state (its sandboxes outlive
// rtemu, as any); one that holds other state is not overwritten: the start
// fails, saying so.
func (s *Server) loadSeed(ctx context.Context) error {
	if s.cfg.Seed == "" {
		return nil
	}
	f, err := os.Open(s.cfg.Seed)
	if err != nil {
		return fmt.Errorf("--seed: %w", err)
	}
	defer f.Close()
	m, err := state.ReadManifest(f)
	if err != nil {
		return fmt.Errorf("--seed %s: %w", s.cfg.Seed, err)
	}
	if s.svc.SeedID() == m.ID {
		s.log.Info("the data dir was seeded from this archive already; keeping its state", "seed", s.cfg.Seed, "id", m.ID)
		return nil
	}
	empty, err := s.svc.Empty(ctx)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("--seed %s: the data dir %s holds sandboxes or workspaces of its own; a seed loads only into an empty data dir (use another --data-dir, --ephemeral, or rtemu state load to replace it)", s.cfg.Seed, s.DataDir)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	res, err := s.svc.LoadState(ctx, f)
	if err != nil {
		return fmt.Errorf("--seed %s: %w", s.cfg.Seed, err)
	}
	s.log.Info("loaded the seed", "seed", s.cfg.Seed, "id", m.ID, "sandboxes", res.Sandboxes, "saved", m.CreatedAt)
	return nil
}
