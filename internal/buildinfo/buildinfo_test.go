package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-12-07T08:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
		line                  string
	}{
		{"nothing at all", "", "", "", nil, Info{Version: "dev"}, "rtemu dev"},
		{"stamped by a release", "v1.2.3", "abcdef", "2026-12-01", vcs,
			Info{Version: "v1.2.3", Commit: "abcdef", Date: "2026-12-01", Modified: true},
			"rtemu v1.2.3 (commit abcdef+dirty, built 2026-12-01)"},
		{"go build in a checkout", "", "", "", vcs,
			Info{Version: "dev", Commit: "0123456789abcdef0123", Date: "2026-12-07T08:00:00Z", Modified: true},
			"rtemu dev (commit 0123456789ab+dirty, built 2026-12-07T08:00:00Z)"},
		{"go install @version", "", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}},
			Info{Version: "v1.4.0"}, "rtemu v1.4.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := resolve(tt.version, tt.commit, tt.date, tt.bi)
			if got != tt.want {
				t.Fatalf("resolve = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.line {
				t.Fatalf("String = %q, want %q", s, tt.line)
			}
		})
	}
}
