// Package testtool is how rtemu's tests find the programs they drive
// outside Go (OpenSSH, sshpass, Chromium): a test whose program is
// missing skips, naming the package that installs it, and never fails.
package testtool

import (
	"os/exec"
	"testing"
)

// Need returns the path of each program, or skips the test, naming the
// Debian package that installs the first one missing.
func Need(t testing.TB, pkg string, programs ...string) []string {
	t.Helper()
	paths := make([]string, len(programs))
	for i, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Skipf("%s is not installed (apt-get install %s)", p, pkg)
		}
		paths[i] = path
	}
	return paths
}

// Chromium returns the path of a Chromium, or skips the test. It is looked
// for under Debian's name, Ubuntu's, Google Chrome's (as on GitHub's hosted
// runners) and chromedp's headless-shell, in that order.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (apt-get install chromium): this test drives a headless browser")
	return ""
}
