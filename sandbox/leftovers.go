package sandbox

import (
	"context"
	"log/slog"
	"time"
)

// removeTimeout bounds a container's removal that rtemu's stop, or a client
// hanging up, does not cut short (removeContainer).
const removeTimeout = 30 * time.Second

// removeContainer removes a container to the end even when ctx ends
// meanwhile: a delete whose client hung up, or an async delete under way
// when rtemu stops, would otherwise leave the container for the next start
// (or, with --ephemeral or no next start, for nobody). Callers run in a
// request or in the service's background work, which Close waits for.
func (s *Service) removeContainer(ctx context.Context, name string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	return s.engine.Remove(rctx, name)
}

// removeLeftover removes what a provisioning made of a container that will
// not become a running sandbox: a failed one, one destroyed while it was
// being made (the delete found no container yet and left the removal to
// the provisioning, which follows up here), one cut short by rtemu's stop.
func (s *Service) removeLeftover(ctx context.Context, name string, log *slog.Logger) {
	if err := s.removeContainer(ctx, name); err != nil {
		log.Warn("could not remove a container that will not run; the next start removes it", "container", name, "err", err)
	}
}
