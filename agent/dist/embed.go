//go:build rtemu_agents

package dist

import (
	"embed"
	"io/fs"
)

// Release builds carry agents for both architectures engines commonly run,
// made by the go:generate lines in embed_none.go.
//
//go:embed agents/rtemu-agent-linux-*
var embeddedFiles embed.FS

// embedded is the agent for linux/goarch in the executable; nil when
// there is none. It is read as a file (not embed.FS.ReadFile, which copies
// the 3 MB onto the heap at every start).
func embedded(goarch string) fs.FS {
	sub, err := fs.Sub(embeddedFiles, "agents")
	if err != nil {
		return nil
	}
	if _, err := fs.Stat(sub, embeddedName(goarch)); err != nil {
		return nil
	}
	return sub
}
