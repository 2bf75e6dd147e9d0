package emulator

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestREADMEListsUnimplemented keeps the README's "Differences from the
// hosted API" table in step with the routes that answer 501.
func TestREADMEListsUnimplemented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Differences from the hosted API")
	if i < 0 {
		t.Fatal("README has no Differences from the hosted API section")
	}
	var row string
	for _, line := range strings.Split(readme[i:], "\n") {
		if strings.HasPrefix(line, "| Not implemented") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("the differences table has no Not implemented row")
	}
	var documented []string
	for _, m := range regexp.MustCompile("`((?:GET|POST|PUT|PATCH|DELETE) /[^`]+)`").FindAllStringSubmatch(row, -1) {
		documented = append(documented, m[1])
	}
	var served []string
	for _, r := range notImplemented {
		served = append(served, r.method+" "+regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.path, "{$1}"))
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("README lists as not implemented:\n  %s\nrtemu answers 501 on:\n  %s",
			strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
}
