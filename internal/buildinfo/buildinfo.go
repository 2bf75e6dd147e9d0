// Package buildinfo says which rtemu this is: the version and commit a
// release build stamps in with -ldflags, or, for `go install …@vX.Y.Z` and
// `go build` in a checkout, what the Go toolchain recorded in the binary.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Stamped by release builds:
//
//	-ldflags "-X github.com/rtemu-dev/rtemu/internal/buildinfo.version=v1.2.3
//	          -X github.com/rtemu-dev/rtemu/internal/buildinfo.commit=…
//	          -X github.com/rtemu-dev/rtemu/internal/buildinfo.date=…"
//
// They are written only by the linker, never at run time.
var (
	version string
	commit  string
	date    string
)

// Info is what `rtemu version`, /health and the start-up log report.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Date    string `json:"date,omitempty"`
	// Modified: built from a work tree with uncommitted changes.
	Modified bool `json:"modified,omitempty"`
}

// DevVersion is the version of a build that carries none: a `go build` or
// `go run` in a checkout.
const DevVersion = "dev"

// Get returns the stamped values, else what the toolchain recorded.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, date, bi)
}

func resolve(version, commit, date string, bi *debug.BuildInfo) Info {
	info := Info{Version: version, Commit: commit, Date: date}
	if bi != nil {
		// `go install github.com/rtemu-dev/rtemu@v1.2.3` records the module's
		// version; a build in a checkout records "(devel)" (or, since Go
		// 1.24, a pseudo-version derived from the commit).
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = DevVersion
	}
	return info
}

// ShortCommit is the commit's first 12 characters.
func (i Info) ShortCommit() string {
	if len(i.Commit) > 12 {
		return i.Commit[:12]
	}
	return i.Commit
}

// String is the one line `rtemu version` prints.
func (i Info) String() string {
	var extra []string
	if c := i.ShortCommit(); c != "" {
		if i.Modified {
			c += "+dirty"
		}
		extra = append(extra, "commit "+c)
	}
	if i.Date != "" {
		extra = append(extra, "built "+i.Date)
	}
	if len(extra) == 0 {
		return "rtemu " + i.Version
	}
	return fmt.Sprintf("rtemu %s (%s)", i.Version, strings.Join(extra, ", "))
}
