package sandbox

import (
	"context"
	"time"
)

// SetClock makes the service read the time from now (tests of idleness).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Transition applies one transition of the state machine to a record.
func (s *Service) Transition(ctx context.Context, id string, to Status) error {
	_, err := s.transition(ctx, id, to, nil)
	return err
}

// UpdateRecord is the service's write of anything but a status.
func (s *Service) UpdateRecord(ctx context.Context, id string, fn func(*Sandbox) error) error {
	_, err := s.update(ctx, id, fn)
	return err
}

// ErrStatusWrite is refused by UpdateRecord.
var ErrStatusWrite = errStatusWrite

// Transitions is the state machine's table.
func Transitions() map[Status][]Status { return transitions }

// Stopping is closed once Close has begun (the service's work is told to
// end).
func (s *Service) Stopping() <-chan struct{} { return s.ctx.Done() }

// EngineUp says whether the service counts the engine as answering.
func (s *Service) EngineUp() bool { return s.engineUp.Load() }

// Process is this service's process id, on the helpers it has made.
func (s *Service) Process() string { return s.process }
