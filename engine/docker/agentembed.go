//go:build rtemu_agents

package docker

import (
	"embed"
)

// Release builds carry agents for both architectures engines commonly run,
// made by the go:generate line in agentembed_none.go.
//
//go:embed agents/rtemu-agent-linux-*
var embeddedAgents embed.FS

func embeddedAgent(goarch string) []byte {
	b, err := embeddedAgents.ReadFile("agents/rtemu-agent-linux-" + goarch)
	if err != nil {
		return nil
	}
	return b
}
