// Package dashboard holds rtemu's web dashboard: plain HTML, CSS and
// JavaScript modules embedded in the binary, with no build step and nothing
// loaded from the network. The emulator serves them at / and under
// /_emulator/dashboard/; the page talks to rtemu only through the public REST
// API and the emulator's /_emulator/events and /_emulator/info endpoints.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed web
var web embed.FS

// Files is the dashboard's static files: index.html at the root, the
// stylesheet and the modules next to it.
func Files() fs.FS {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		// fs.Sub fails only on an invalid path; "web" is a constant.
		panic(err)
	}
	return sub
}
