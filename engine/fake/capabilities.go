package fake

import (
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// Capabilities is what the fake can do by default: everything a real engine
// may (as Docker), tuned as Docker is, so the service's tests run its
// every feature. WithCapabilities turns some off.
func Capabilities() engine.Capabilities {
	return engine.Capabilities{
		Name:  "fake",
		Pause: true, SharedFolders: true, DiskQuota: true, PeerNames: true, UpdateLimits: true,
		CPUsCappedToHost: true, StopsContainersWhenDown: true, Snapshot: true,
		ExecSlots: 8, ProvisionSlots: 4, AgentIdleLimit: time.Minute,
	}
}

// SetCapabilities changes what the fake says it can do (Capabilities), for
// tests of what the service does on an engine that cannot do a thing. Calls
// of what it then cannot do fail, as on such an engine: Pause and Unpause
// without Pause, UpdateLimits without UpdateLimits.
func (e *Engine) SetCapabilities(c engine.Capabilities) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.caps = c
}

// Capabilities says what the fake can do.
func (e *Engine) Capabilities() engine.Capabilities {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.caps
}

// cannot is the error of a call the fake was told it cannot make.
func (e *Engine) cannot(what string, can func(engine.Capabilities) bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if can(e.caps) {
		return nil
	}
	return fmt.Errorf("the %s engine cannot %s", e.caps.Name, what)
}
