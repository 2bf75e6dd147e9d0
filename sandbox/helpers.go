package sandbox

import (
	"context"
	"time"
)

// LabelProcess marks the short-lived containers an engine makes for one
// rtemu process (the agent volume's filler, probes): the process's own
// random id, so a later process tells the helpers of a dead one from its
// own.
const LabelProcess = "rtemu.process"

// A process killed while the engine was making a helper for it leaves the
// engine to finish that call after the next rtemu's start-up reconcile has
// looked: the helper shows up moments later, with no one to remove it.
// sweepHelpers looks again every helperSweepEvery for helperSweepFor after
// the start, which outlasts any call of a dead process.
const (
	helperSweepEvery = 2 * time.Second
	helperSweepFor   = 2 * time.Minute
)

// helperLabels go on every helper container this process has the engine
// make: reconcile removes one a kill left behind, and sweepHelpers one
// made after it.
func (s *Service) helperLabels() map[string]string {
	return map[string]string{LabelInstance: s.instance, LabelProcess: s.process}
}

// sweepHelpers removes this instance's helper containers made for another
// (dead) process, for a while after the start.
func (s *Service) sweepHelpers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, helperSweepFor)
	defer cancel()
	everyTick(ctx, helperSweepEvery, func() { s.removeHelpersOfOthers(ctx) })
}

func (s *Service) removeHelpersOfOthers(ctx context.Context) {
	cs, err := s.engine.List(ctx, map[string]string{LabelInstance: s.instance})
	if err != nil {
		return
	}
	for _, c := range cs {
		if p := c.Labels[LabelProcess]; p == "" || p == s.process || c.Labels[LabelSandbox] != "" {
			continue
		}
		s.log.Info("removing a helper container of an earlier rtemu", "container", c.Name)
		if err := s.engine.Remove(ctx, c.Name); err != nil && ctx.Err() == nil {
			s.log.Debug("could not remove a helper container", "container", c.Name, "err", err)
		}
	}
}
