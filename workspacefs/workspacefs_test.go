package workspacefs_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/workspacefs"
)

// fixture is a workspace folder beside a folder that must stay untouched,
// with the links a sandbox could make in the workspace.
type fixture struct {
	base, ws, outside string
	f                 *workspacefs.Folder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	fx := &fixture{base: base, ws: filepath.Join(base, "ws"), outside: filepath.Join(base, "outside")}
	must(t, os.Mkdir(fx.ws, 0o755))
	must(t, os.Mkdir(fx.outside, 0o755))
	must(t, os.WriteFile(filepath.Join(fx.outside, "secret"), []byte("SECRET"), 0o644))
	must(t, os.Mkdir(filepath.Join(fx.ws, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(fx.ws, "sub", "f"), []byte("inside"), 0o644))
	for link, target := range map[string]string{
		"rootlink": "/",                                      // a symlink to /
		"pw":       "/etc/passwd",                            // a symlink to /etc/passwd
		"out":      "../outside",                             // a relative symlink out
		"outabs":   fx.outside,                               // an absolute symlink out
		"sec":      "../outside/secret",                      // a relative symlink to an outside file
		"deep":     "sub/../../outside/secret",               // out through a folder
		"in":       "sub/f",                                  // a symlink that stays inside
		"dirlink":  "sub",                                    // a symlinked folder inside
		"loop":     "loop",                                   // a symlink loop
		"dotdot":   strings.Repeat("../", 20) + "etc/passwd", // far out
	} {
		must(t, os.Symlink(target, filepath.Join(fx.ws, link)))
	}
	var err error
	fx.f, err = workspacefs.Open(fx.ws)
	must(t, err)
	t.Cleanup(func() { fx.f.Close() })
	return fx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// untouched checks that nothing outside the workspace changed.
func (fx *fixture) untouched(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fx.outside, "secret"))
	if err != nil || string(b) != "SECRET" {
		t.Fatalf("outside secret changed: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(fx.outside)
	if len(ents) != 1 {
		t.Fatalf("outside folder has %d entries, want 1", len(ents))
	}
	ents, _ = os.ReadDir(fx.base)
	if len(ents) != 2 {
		t.Fatalf("base folder has %d entries, want 2 (ws, outside)", len(ents))
	}
}

func read(f *workspacefs.Folder, p string) (string, error) {
	file, _, err := f.OpenFile(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	b, err := io.ReadAll(file)
	return string(b), err
}

func TestReadConfined(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	cases := []struct {
		path string
		want string
		err  error
	}{
		{"sub/f", "inside", nil},
		{"/sub/f", "inside", nil},
		{"in", "inside", nil},
		{"dirlink/f", "inside", nil},
		{"sub/../sub/f", "inside", nil},
		{"/etc/passwd", "", fs.ErrNotExist}, // workspace-relative, not the host's
		{"../outside/secret", "", workspacefs.ErrOutside},
		{"/../outside/secret", "", workspacefs.ErrOutside},
		{"sub/../../outside/secret", "", workspacefs.ErrOutside},
		{"rootlink/etc/passwd", "", workspacefs.ErrOutside},
		{"pw", "", workspacefs.ErrOutside},
		{"out/secret", "", workspacefs.ErrOutside},
		{"outabs/secret", "", workspacefs.ErrOutside},
		{"sec", "", workspacefs.ErrOutside},
		{"deep", "", workspacefs.ErrOutside},
		{"dotdot", "", workspacefs.ErrOutside},
		{"loop", "", workspacefs.ErrLoop},
		{"sub", "", workspacefs.ErrIsDir},
		{"a\x00b", "", workspacefs.ErrBadPath},
	}
	for _, c := range cases {
		got, err := read(fx.f, c.path)
		if c.err == nil {
			if err != nil || got != c.want {
				t.Errorf("read %q = %q, %v; want %q", c.path, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, c.err) {
			t.Errorf("read %q: err %v, want %v (got %q)", c.path, err, c.err, got)
		}
		if strings.Contains(got, "SECRET") || strings.Contains(got, "root:") {
			t.Fatalf("read %q leaked %q", c.path, got)
		}
	}
	fx.untouched(t)
}

func TestListAndInfoConfined(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	for _, p := range []string{"rootlink", "rootlink/etc", "out", "outabs", "..", "../outside", "sub/../.."} {
		if _, err := fx.f.List(p, true); !errors.Is(err, workspacefs.ErrOutside) {
			t.Errorf("list %q: %v, want ErrOutside", p, err)
		}
		if _, _, err := fx.f.Usage(p + "/x"); err == nil {
			t.Errorf("info %q/x: no error", p)
		}
	}
	ents, err := fx.f.List("dirlink", false)
	if err != nil || len(ents) != 1 || ents[0].ID != "/dirlink/f" {
		t.Fatalf("list dirlink = %+v, %v", ents, err)
	}
	// The root listing shows the links as links, without following them.
	ents, err = fx.f.List("/", true)
	must(t, err)
	for _, e := range ents {
		if e.Name == "pw" && (!e.Symlink || e.Size != 0) {
			t.Errorf("pw entry %+v", e)
		}
	}
	_, u, err := fx.f.Usage("/")
	must(t, err)
	if u.Bytes != int64(len("inside")) {
		t.Errorf("usage bytes %d: symlinks must not be followed", u.Bytes)
	}
}

func TestWritesConfined(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	type op struct {
		name string
		do   func() error
	}
	ops := []op{
		{"create in symlink to /", func() error { _, err := fx.f.CreateFile("rootlink/tmp", "x", []byte("x")); return err }},
		{"create in relative link out", func() error { _, err := fx.f.CreateFile("out", "x", []byte("x")); return err }},
		{"create with .. dir", func() error { _, err := fx.f.CreateFile("../outside", "x", []byte("x")); return err }},
		{"mkdir in link out", func() error { _, err := fx.f.Mkdir("outabs", "x"); return err }},
		{"upload into link out", func() error { _, err := fx.f.BeginUpload("out"); return err }},
		{"write through link out", func() error { _, err := fx.f.Write("out/secret", []byte("x")); return err }},
		{"write with ..", func() error { _, err := fx.f.Write("../outside/secret", []byte("x")); return err }},
		{"rename in link out", func() error { _, err := fx.f.Rename("out/secret", "y"); return err }},
		{"move into link to /", func() error { _, err := fx.f.Move("sub/f", "rootlink/tmp"); return err }},
		{"move out of link", func() error { _, err := fx.f.Move("out/secret", "/"); return err }},
		{"copy into link out", func() error { _, err := fx.f.Copy("sub", "out"); return err }},
		{"copy from link out", func() error { _, err := fx.f.Copy("out/secret", "/"); return err }},
		{"delete through link out", func() error { _, err := fx.f.Remove([]string{"out/secret"}); return err }},
		{"delete through link to /", func() error { _, err := fx.f.Remove([]string{"rootlink/tmp"}); return err }},
		{"delete with ..", func() error { _, err := fx.f.Remove([]string{"../outside"}); return err }},
	}
	for _, o := range ops {
		if err := o.do(); !errors.Is(err, workspacefs.ErrOutside) {
			t.Errorf("%s: %v, want ErrOutside", o.name, err)
		}
		fx.untouched(t)
	}
	// Bad names never become paths.
	for _, n := range []string{"", ".", "..", "a/b", "../x", "x\x00", strings.Repeat("n", 256)} {
		if _, err := fx.f.CreateFile("/", n, nil); !errors.Is(err, workspacefs.ErrBadName) {
			t.Errorf("create %q: %v, want ErrBadName", n, err)
		}
		if _, err := fx.f.Rename("sub/f", n); !errors.Is(err, workspacefs.ErrBadName) {
			t.Errorf("rename to %q: %v, want ErrBadName", n, err)
		}
	}
	fx.untouched(t)
}

func TestSymlinksAreNeverFollowedByMutations(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	// Copying a link copies the link.
	e, err := fx.f.Copy("pw", "sub")
	must(t, err)
	if !e.Symlink {
		t.Fatalf("copy of a symlink is %+v", e)
	}
	if target, _ := os.Readlink(filepath.Join(fx.ws, "sub", "pw")); target != "/etc/passwd" {
		t.Fatalf("copied link points at %q", target)
	}
	if _, err := read(fx.f, "sub/pw"); !errors.Is(err, workspacefs.ErrOutside) {
		t.Fatalf("read of the copied link: %v", err)
	}
	// Renaming and moving a link move the link.
	_, err = fx.f.Rename("sec", "sec2")
	must(t, err)
	_, err = fx.f.Move("sec2", "sub")
	must(t, err)
	// Writing to a link replaces the link; the target is untouched.
	_, err = fx.f.Write("sub/sec2", []byte("replaced"))
	must(t, err)
	if fi, _ := os.Lstat(filepath.Join(fx.ws, "sub", "sec2")); !fi.Mode().IsRegular() {
		t.Fatalf("sub/sec2 is %v", fi.Mode())
	}
	// Deleting a link deletes the link.
	_, err = fx.f.Remove([]string{"pw", "rootlink", "outabs"})
	must(t, err)
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	fx.untouched(t)
}

// A hard link reads as a file, but a write through the file API replaces
// the name instead of writing into the shared inode.
func TestWriteDoesNotWriteThroughHardLinks(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	a := filepath.Join(fx.ws, "a")
	must(t, os.WriteFile(a, []byte("old"), 0o640))
	must(t, os.Link(a, filepath.Join(fx.ws, "b")))
	e, err := fx.f.Write("b", []byte("new"))
	must(t, err)
	if got, _ := os.ReadFile(a); string(got) != "old" {
		t.Fatalf("a changed to %q", got)
	}
	if got, _ := read(fx.f, "b"); got != "new" || e.Size != 3 {
		t.Fatalf("b = %q (%+v)", got, e)
	}
	if fi, _ := os.Stat(filepath.Join(fx.ws, "b")); fi.Mode().Perm() != 0o640 {
		t.Fatalf("write lost the mode: %v", fi.Mode())
	}
}

// A folder swapped for a symlink (out) and back, as fast as a sandbox can,
// while reads and uploads go on: they see the inside or fail, never the
// outside.
func TestSwapRace(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	d := filepath.Join(fx.ws, "d")
	must(t, os.Mkdir(d, 0o755))
	must(t, os.WriteFile(filepath.Join(d, "secret"), []byte("inside"), 0o644))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := filepath.Join(fx.ws, "d.real")
		for !stop.Load() {
			_ = os.Rename(d, tmp)
			_ = os.Symlink(fx.outside, d)
			_ = os.Remove(d)
			_ = os.Rename(tmp, d)
		}
	}()
	var ok, refused int
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		got, err := read(fx.f, "d/secret")
		switch {
		case err == nil && got == "inside":
			ok++
		case err == nil:
			stop.Store(true)
			t.Fatalf("read through the swapped folder gave %q", got)
		default:
			refused++
		}
		if u, err := fx.f.BeginUpload("d"); err == nil {
			_, _ = u.Write([]byte("x"))
			_, _ = u.Commit("up")
		}
		_, _ = fx.f.CreateFile("d", "created", []byte("x"))
		_, _ = fx.f.List("d", true)
	}
	stop.Store(true)
	wg.Wait()
	fx.untouched(t)
	t.Logf("%d reads inside, %d refused", ok, refused)
	if ok == 0 {
		t.Fatal("no read succeeded; the race did not run")
	}
}

func TestNamesRoundTrip(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	for _, n := range []string{"with space.txt", "ünïcødé ✓.md", "new\nline", "tab\there", "-dash", "#hash?q=1&x%20"} {
		e, err := fx.f.CreateFile("/", n, []byte(n))
		must(t, err)
		if e.Name != n || e.ID != "/"+n {
			t.Errorf("entry %+v for %q", e, n)
		}
		if got, err := read(fx.f, e.ID); err != nil || got != n {
			t.Errorf("read %q = %q, %v", n, got, err)
		}
		if _, err := os.Stat(filepath.Join(fx.ws, n)); err != nil {
			t.Errorf("on disk: %v", err)
		}
	}
}

func TestCopyMoveIntoItself(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	must(t, os.MkdirAll(filepath.Join(fx.ws, "sub", "inner"), 0o755))
	for _, dest := range []string{"sub", "sub/inner", "dirlink/inner"} {
		if _, err := fx.f.Copy("sub", dest); !errors.Is(err, workspacefs.ErrIntoItself) && !errors.Is(err, fs.ErrExist) {
			t.Errorf("copy sub into %s: %v", dest, err)
		}
		if _, err := fx.f.Move("sub", dest); !errors.Is(err, workspacefs.ErrIntoItself) && !errors.Is(err, fs.ErrExist) {
			t.Errorf("move sub into %s: %v", dest, err)
		}
	}
	must(t, os.Mkdir(filepath.Join(fx.ws, "dst"), 0o755))
	e, err := fx.f.Copy("sub", "dst")
	must(t, err)
	if e.ID != "/dst/sub" || !e.Dir {
		t.Fatalf("copy gave %+v", e)
	}
	if got, _ := read(fx.f, "dst/sub/f"); got != "inside" {
		t.Fatalf("copied file %q", got)
	}
}

func TestRemoveChecksAllFirst(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	_, err := fx.f.Remove([]string{"sub/f", "missing"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("remove with a missing id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fx.ws, "sub", "f")); err != nil {
		t.Fatal("a failed batch delete removed sub/f")
	}
	if _, err := fx.f.Remove([]string{"/"}); !errors.Is(err, workspacefs.ErrRoot) {
		t.Fatalf("remove /: %v", err)
	}
}
