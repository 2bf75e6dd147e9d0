package docker

import (
	"errors"
	"time"
)

// The exec agent (package agent) runs commands inside a sandbox without a
// Docker exec each: one exec starts it, and it is reused. Every container
// Create makes gets the agent's volume at AgentMount, read-only; a
// container without it (made before, or by another build) runs commands by
// Docker exec, as does any command with a terminal.
//
// The agent's volume and the files in it are agentvolume.go; how a stream
// to it is opened (an agent of its own on a Docker exec, a stream of the
// port relay, the link's connection) is agentpool.go, ports.go and
// agentlink.go; where the agent comes from is agentsource.go. Keeping the
// streams between commands (client.Pool), the exec loop (client.Exec) and
// a command's run (client.Run) are the engine-neutral agent/client's.
const (
	// AgentMount is where the agent's files appear in a sandbox.
	AgentMount = "/.rtemu"
	// LabelAgent marks the agent's volumes; its value is the executable the
	// volume was made from, so a volume whose executable is gone is pruned.
	LabelAgent = "rtemu.agent"
	// labelAgentHelper marks the short-lived container that fills a volume.
	labelAgentHelper = "rtemu.agent.helper"

	// agentIdleFor is how long an unused agent is kept: it holds a few MB
	// of the sandbox's memory.
	agentIdleFor = time.Minute
	// agentsKept bounds the idle agents kept per container.
	agentsKept = 8
)

// errNoAgent: the container cannot run the agent (no volume, another
// protocol, a foreign architecture); it runs commands by Docker exec.
var errNoAgent = errors.New("no exec agent in this container")

// errOldRelay: the container's agent is of an older rtemu, whose port relay
// speaks another multiplexer (agent.VersionOwnMux): its ports go by the
// shell relay, its overlapping commands on agents of their own.
var errOldRelay = errors.New("the exec agent in this container is too old for the port relay")
