package sandbox

import (
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// What the engine can do (engine.Capabilities) decides what the service
// does instead of one engine's ways being assumed: pause and idle pause
// only where the engine pauses, mounts only where it shares folders, vCPUs
// clamped only where it refuses more than its host's, and its tuning (exec
// slots, provisioning slots, keeping exec agents warm) from the engine.

// Capabilities is what the engine said it can do when the service was made.
func (s *Service) Capabilities() engine.Capabilities { return s.caps }

// TheEngine names the engine in messages: "the Docker engine".
func (s *Service) TheEngine() string { return s.theEngine() }

func (s *Service) theEngine() string {
	if s.caps.Name == "" {
		return "the container engine"
	}
	return "the " + s.caps.Name + " engine"
}

// aliases are the names other sandboxes on a shared network reach a
// sandbox by, where the engine gives names.
func (s *Service) aliases(id string) []string {
	if !s.caps.PeerNames {
		return nil
	}
	return []string{id, id[len("sandbox-"):]}
}

// clampCPUs clamps vcpus to the host's CPUs where the engine refuses a
// limit above them (the sandbox still reports what was asked for).
func (s *Service) clampCPUs(cpus int) int {
	if host := int(s.hostCPUs.Load()); s.caps.CPUsCappedToHost && host > 0 && cpus > host {
		return host
	}
	return cpus
}

// cannotPause is the conflict of a pause or resume on an engine that
// cannot pause.
func (s *Service) cannotPause(sb *Sandbox, verb string) error {
	return conflict("sandbox %s cannot be %s: %s cannot pause a sandbox (it would lose its processes)", sb.ID, verb, s.theEngine())
}

// poolAgentRefresh is how long an idle pool container's exec agent goes
// unused before the pool runs a command on it, so the engine keeps it (it
// ends agents idle for AgentIdleLimit) and the sandbox's first command
// finds it started: two thirds of the engine's limit (40 s of Docker's
// minute). 0: the engine keeps no agents, nothing to refresh.
func (s *Service) poolAgentRefresh() time.Duration {
	return s.caps.AgentIdleLimit * 2 / 3
}

// noDiskQuota is what DiskLimits says where the engine has no disk quota
// at all: nothing to ask it.
func noDiskQuota(c engine.Capabilities) engine.DiskLimits {
	return engine.DiskLimits{StorageDriver: c.Name, Why: fmt.Sprintf("the %s engine has no per-sandbox disk quota", c.Name)}
}
