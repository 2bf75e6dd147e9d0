package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// readmeMaxLines bounds README.md: it is for users, and internals go to docs/.
const readmeMaxLines = 700

// TestReadmeLength keeps README.md short enough to read.
func TestReadmeLength(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(b), "\n")
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	if n > readmeMaxLines {
		t.Errorf("README.md has %d lines, more than %d: move internals to docs/", n, readmeMaxLines)
	}
}

// TestReadmeLinks checks every relative link of README.md and docs/*.md: the file it names
// exists, and so does the heading (or <a id>) its #anchor names.
func TestReadmeLinks(t *testing.T) {
	t.Parallel()
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{"README.md"}, docs...)
	anchors := map[string]map[string]bool{} // cleaned path → anchors
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a, err := markdownAnchors(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		anchors[path] = a
		return a
	}
	checked := 0
	for _, file := range files {
		links, err := markdownLinks(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			target, frag, _ := strings.Cut(l.target, "#")
			path := file
			if target != "" {
				path = filepath.Join(filepath.Dir(file), filepath.FromSlash(target))
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s:%d: link (%s): no file %s", file, l.line, l.target, path)
					continue
				}
			}
			checked++
			if frag == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			if !anchorsOf(filepath.Clean(path))[frag] {
				t.Errorf("%s:%d: link (%s): %s has no heading with anchor #%s", file, l.line, l.target, path, frag)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the parser is broken")
	}
}

// TestGitHubAnchor pins the anchor rules the link check uses.
func TestGitHubAnchor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ heading, want string }{
		{"Install", "install"},
		{"Health, durability and cleanup", "health-durability-and-cleanup"},
		{"Dev URLs, idle timeout, streaming exec, stats and activity", "dev-urls-idle-timeout-streaming-exec-stats-and-activity"},
		{"Use in Go tests", "use-in-go-tests"},
		{"`rtemu sandbox …` commands", "rtemu-sandbox--commands"},
		{"snake_case and kebab-case", "snake_case-and-kebab-case"},
		{"[Linked](x.md) heading", "linked-heading"},
	} {
		if got := githubAnchor(c.heading); got != c.want {
			t.Errorf("githubAnchor(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

type mdLink struct {
	target string
	line   int
}

var (
	mdLinkRE   = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpanRE = regexp.MustCompile("`[^`]*`")
	headingRE  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlIDRE   = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	inlineLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// markdownLinks returns the relative links of a markdown file, outside code blocks and code spans.
func markdownLinks(path string) ([]mdLink, error) {
	var links []mdLink
	err := eachProseLine(path, func(n int, line string) {
		for _, m := range mdLinkRE.FindAllStringSubmatch(codeSpanRE.ReplaceAllString(line, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links = append(links, mdLink{target: target, line: n})
		}
	})
	return links, err
}

// markdownAnchors returns the anchors a file's headings and <a id> tags make, numbered as
// GitHub numbers repeats (x, x-1, x-2).
func markdownAnchors(path string) (map[string]bool, error) {
	anchors := map[string]bool{}
	seen := map[string]int{}
	err := eachProseLine(path, func(_ int, line string) {
		for _, m := range htmlIDRE.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			return
		}
		a := githubAnchor(m[1])
		if k := seen[a]; k > 0 {
			anchors[a+"-"+strconv.Itoa(k)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	})
	return anchors, err
}

// githubAnchor is the anchor GitHub gives a heading: its text lower-cased, spaces made '-', and
// punctuation other than '-' and '_' dropped.
func githubAnchor(heading string) string {
	heading = inlineLink.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// eachProseLine calls fn for every line of a markdown file outside fenced code blocks.
func eachProseLine(path string, fn func(n int, line string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	fence := ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		fn(n, line)
	}
	return sc.Err()
}
