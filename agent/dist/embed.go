//go:build rtemu_agents

package dist

import (
	"embed"
)

// Release builds carry agents for both architectures engines commonly run,
// made by the go:generate line in agentembed_none.go.
//
//go:embed agents/rtemu-agent-linux-*
var embeddedFiles embed.FS

func embedded(goarch string) []byte {
	b, err := embeddedFiles.ReadFile("agents/rtemu-agent-linux-" + goarch)
	if err != nil {
		return nil
	}
	return b
}
