package sandbox

import "context"

// Reconcile runs a reconcile now, as a lost event stream would.
func (s *Service) Reconcile(ctx context.Context) error { return s.reconcile(ctx) }
