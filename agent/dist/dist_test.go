package dist

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestWriteCached: an agent is written to the cache once, under a name of
// its content, executable and whole; the same content again is the same
// file, not written again; another content is another file.
func TestWriteCached(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := bytes.Repeat([]byte("agent\x00"), 100_000) // several copy buffers
	src := fstest.MapFS{
		"a":     {Data: big},
		"a-too": {Data: big},
		"b":     {Data: append([]byte("other"), big...)},
	}
	p, err := writeCached(dir, "embedded-linux-amd64", src, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(p), "rtemu-agent-embedded-linux-amd64-") {
		t.Errorf("cached as %s", p)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("cached file: %d bytes, %v; want the agent's %d", len(got), err, len(big))
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("cached file's mode %v, %v: want executable", fi.Mode(), err)
	}
	// Mark the file: a second write would replace it (a rename).
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	again, err := writeCached(dir, "embedded-linux-amd64", src, "a-too")
	if err != nil || again != p {
		t.Fatalf("same content: %s, %v; want %s", again, err, p)
	}
	if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("same content was written again (modified %v, %v)", fi.ModTime(), err)
	}
	other, err := writeCached(dir, "embedded-linux-amd64", src, "b")
	if err != nil || other == p {
		t.Fatalf("other content: %s, %v; want a file other than %s", other, err, p)
	}
	if _, err := writeCached(dir, "embedded-linux-amd64", src, "missing"); err == nil {
		t.Error("a missing file was cached")
	}
	if _, err := writeCached("", "embedded-linux-amd64", src, "a"); err == nil {
		t.Error("cached with no cache dir")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("cache dir holds %d files, want 2 (no temporary left)", len(entries))
	}
}
