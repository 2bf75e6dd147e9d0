package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fault modes.
const (
	FaultError     = "error"      // the operation answers an error
	FaultLatency   = "latency"    // the operation is delayed
	FaultFailAsync = "fail-async" // sandbox.create answers 201, then the sandbox ends failed
)

// AnyOperation arms a fault for every operation.
const AnyOperation = "*"

// Fault makes an operation fail or slow down on purpose, so that a client's
// error paths can be tested.
type Fault struct {
	ID        string
	Operation string
	Mode      string
	// Answer is, for an error fault, the front door's own answer (the REST
	// API's HTTP status and code): the service keeps it and never reads it.
	Answer  any
	Message string // error: the message
	Ms      int    // latency: the delay
	// Count is how many times the fault fires; 0 means until it is cleared.
	Count int
	// Fired is how many times it has fired.
	Fired int
}

type faults struct {
	mu    sync.Mutex
	armed []*Fault
	seq   int
}

// ArmFault checks and arms a fault. Which operations exist, and what an
// error fault answers, are the front door's: it checks them and passes what
// it found wrong as more, so that one answer lists every mistake.
func (s *Service) ArmFault(f Fault, more ...FieldError) (Fault, error) {
	v := invalid(append([]FieldError(nil), more...))
	switch f.Mode {
	case FaultError:
	case FaultLatency:
		if f.Ms < 1 || f.Ms > 600000 {
			v.add("ms", "must be between 1 and 600000")
		}
	case FaultFailAsync:
		if f.Operation != "sandbox.create" {
			v.add("mode", "fail-async applies to sandbox.create only")
		}
	default:
		v.add("mode", "must be error, latency or fail-async")
	}
	if f.Count < 0 {
		v.add("count", "must be 0 (until cleared) or more")
	}
	if err := v.err(); err != nil {
		return Fault{}, err
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.seq++
	f.ID, f.Fired = fmt.Sprintf("fault_%d", s.faults.seq), 0
	s.faults.armed = append(s.faults.armed, &f)
	return f, nil
}

// Faults lists the armed faults.
func (s *Service) Faults() []Fault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]Fault, 0, len(s.faults.armed))
	for _, f := range s.faults.armed {
		out = append(out, *f)
	}
	return out
}

// ClearFaults disarms every fault.
func (s *Service) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.armed = nil
}

// TakeFault fires the first armed fault of one of the modes for the
// operation, if any, counting it; a fault whose count is used up is removed.
func (s *Service) TakeFault(op string, modes ...string) (Fault, bool) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	for i, f := range s.faults.armed {
		if f.Operation != op && f.Operation != AnyOperation {
			continue
		}
		for _, m := range modes {
			if f.Mode != m {
				continue
			}
			f.Fired++
			if f.Count > 0 && f.Fired >= f.Count {
				s.faults.armed = append(s.faults.armed[:i:i], s.faults.armed[i+1:]...)
			}
			return *f, true
		}
	}
	return Fault{}, false
}

// Delay sleeps for a latency fault, or until ctx ends.
func Delay(ctx context.Context, f Fault) {
	t := time.NewTimer(time.Duration(f.Ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
