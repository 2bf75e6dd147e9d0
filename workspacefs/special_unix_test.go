//go:build unix

package workspacefs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/workspacefs"
)

func TestSpecialFilesAreNeverOpened(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	must(t, syscall.Mkfifo(filepath.Join(fx.ws, "fifo"), 0o644))
	must(t, os.Mkdir(filepath.Join(fx.ws, "tree"), 0o755))
	must(t, syscall.Mkfifo(filepath.Join(fx.ws, "tree", "fifo"), 0o644))
	must(t, os.Symlink("fifo", filepath.Join(fx.ws, "fifolink")))
	paths := []string{"fifo", "fifolink"}
	if os.Geteuid() == 0 {
		// /dev/null's numbers: harmless if it were opened, but it must not be.
		must(t, syscall.Mknod(filepath.Join(fx.ws, "null"), syscall.S_IFCHR|0o666, 1<<8|3))
		paths = append(paths, "null")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range paths {
			if _, err := read(fx.f, p); !errors.Is(err, workspacefs.ErrNotRegular) {
				t.Errorf("read %s: %v, want ErrNotRegular", p, err)
			}
		}
		if _, err := fx.f.Copy("tree", "sub"); !errors.Is(err, workspacefs.ErrNotRegular) {
			t.Errorf("copy of a tree with a FIFO: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
	ents, _ := os.ReadDir(filepath.Join(fx.ws, "sub"))
	if len(ents) != 1 {
		t.Fatalf("a failed copy left %d entries in sub", len(ents))
	}
}
