package templates_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/templates"
)

// debianBase is the offline base the tests build the templates from: a
// minimal Debian made with debootstrap from Debian's mirror and imported
// into the engine. It and the template images are kept between runs (the
// template tags are recipe hashes), so only a machine's first run pays for
// the builds; RTEMU_TEST_BASE names another base (e.g. ubuntu:24.04 where
// a registry answers).
const debianBase = "rtemu-test/debian:bookworm"

// The expensive part happens once per `go test` run, for every test here.
var built struct {
	once     sync.Once
	base     string // the image the templates were built from
	bin      string // an rtemu binary
	log      string // the CLI's build output
	duration time.Duration
	err      error
}

// enableTemplates is the variable that turns the template tests on where
// their images are not built yet; .ci/run sets it.
const enableTemplates = "RTEMU_TEST_TEMPLATES"

// errNoDebootstrap: the offline base cannot be made on this machine.
var errNoDebootstrap = errors.New("the offline base " + debianBase + " is made with debootstrap, as root " +
	"(apt-get install debootstrap), or set RTEMU_TEST_BASE to a local Debian or Ubuntu image")

// templateImages returns the base-ubuntu and desktop-ubuntu images, built
// from the recipes by `rtemu templates build` from the offline base. The
// first build takes about 20 minutes, past go test's default timeout, so
// the tests run only when asked (RTEMU_TEST_TEMPLATES=1) or when both
// images are already in the engine; otherwise they skip, saying how to
// run them.
func templateImages(t *testing.T) (baseUbuntu, desktopUbuntu string) {
	t.Helper()
	emulatortest.SkipIfNoDocker(t)
	if testing.Short() {
		t.Skip("builds the template images (minutes on a machine's first run)")
	}
	base, _ := templates.Lookup("base-ubuntu")
	desktop, _ := templates.Lookup("desktop-ubuntu")
	if os.Getenv(enableTemplates) != "1" && !imagesPresent(t, base.Image(), desktop.Image()) {
		t.Skipf("builds base-ubuntu and desktop-ubuntu first (20–35 min on a machine's first run, as root with debootstrap); "+
			"run them with: %s=1 go test -timeout 45m ./templates/", enableTemplates)
	}
	built.once.Do(func() {
		// The build may take what go test's -timeout leaves, less a
		// minute for the tests to report.
		deadline := time.Now().Add(time.Hour)
		if d, ok := t.Deadline(); ok {
			deadline = d.Add(-time.Minute)
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		built.base, built.err = baseImage(ctx)
		if built.err != nil {
			return
		}
		if built.bin, built.err = rtemuBinary(); built.err != nil {
			return
		}
		start := time.Now()
		var out []byte
		out, built.err = exec.CommandContext(ctx, built.bin, "templates", "build", "desktop-ubuntu", "--base", built.base).CombinedOutput()
		built.log, built.duration = string(out), time.Since(start)
		if built.err != nil {
			built.err = fmt.Errorf("rtemu templates build desktop-ubuntu --base %s: %v\n%s", built.base, built.err, tail(out, 4000))
		}
	})
	if errors.Is(built.err, errNoDebootstrap) {
		t.Skip(built.err)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return base.Image(), desktop.Image()
}

// imagesPresent reports whether the engine has every image.
func imagesPresent(t *testing.T, refs ...string) bool {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, ref := range refs {
		if _, err := cli.ImageInspect(t.Context(), ref); err != nil {
			return false
		}
	}
	return true
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// baseImage makes (once per machine) the Debian base with debootstrap.
func baseImage(ctx context.Context) (string, error) {
	if b := os.Getenv("RTEMU_TEST_BASE"); b != "" {
		return b, nil
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, debianBase); err == nil {
		return debianBase, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("no debootstrap: %w", errNoDebootstrap)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("not root: %w", errNoDebootstrap)
	}
	dir, err := os.MkdirTemp("", "rtemu-debootstrap-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "rootfs")
	mirror := "http://deb.debian.org/debian"
	if m := os.Getenv("RTEMU_TEST_DEBIAN_MIRROR"); m != "" {
		mirror = m
	}
	if out, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "bookworm", root, mirror).CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap: %v\n%s", err, tail(out, 4000))
	}
	// tar, not Go's archive/tar: it keeps device nodes, owners and
	// hard links exactly as debootstrap made them.
	tarCmd := exec.CommandContext(ctx, "tar", "-C", root, "--numeric-owner", "-c", ".")
	var stderr bytes.Buffer
	tarCmd.Stderr = &stderr
	stream, err := tarCmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := tarCmd.Start(); err != nil {
		return "", err
	}
	rc, err := cli.ImageImport(ctx, client.ImageImportSource{Source: stream, SourceName: "-"}, debianBase,
		client.ImageImportOptions{Changes: []string{`CMD ["/bin/bash"]`}})
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if werr := tarCmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("tar: %v: %s", werr, stderr.String())
	}
	if err != nil {
		return "", fmt.Errorf("import %s: %w", debianBase, err)
	}
	return debianBase, nil
}

var binOnce struct {
	sync.Once
	path string
	err  error
}

func rtemuBinary() (string, error) {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rtemu-bin-")
		if err != nil {
			binOnce.err = err
			return
		}
		binOnce.path = filepath.Join(dir, "rtemu")
		if out, err := exec.Command("go", "build", "-o", binOnce.path, "github.com/rtemu-dev/rtemu").CombinedOutput(); err != nil {
			binOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return binOnce.path, binOnce.err
}

// TestMain removes the binary the tests built; the images stay.
func TestMain(m *testing.M) {
	code := m.Run()
	if binOnce.path != "" {
		os.RemoveAll(filepath.Dir(binOnce.path))
	}
	os.Exit(code)
}

// TestBuildFromOfflineBase: `rtemu templates build desktop-ubuntu --base
// IMAGE` builds base-ubuntu and desktop-ubuntu from a debootstrapped
// Debian, showing the build's progress; a second run finds both up to date
// and builds nothing.
func TestBuildFromOfflineBase(t *testing.T) {
	baseUbuntu, desktopUbuntu := templateImages(t)
	t.Logf("first build in this run took %v", built.duration.Round(time.Second))
	start := time.Now()
	out, err := exec.Command(built.bin, "templates", "build", "desktop-ubuntu", "--base", built.base).CombinedOutput()
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"base-ubuntu is up to date (" + baseUbuntu + ", built from " + built.base + ")",
		"desktop-ubuntu is up to date (" + desktopUbuntu + ", built from " + built.base + ")",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("second build says\n%s\nwant %q", text, want)
		}
	}
	if bytes.Contains(out, []byte("Step ")) || time.Since(start) > 20*time.Second {
		t.Errorf("an unchanged recipe was built again (%v):\n%s", time.Since(start), text)
	}
	// The list shows both built, from the base.
	out, err = exec.Command(built.bin, "templates", "list").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(desktopUbuntu+"  built from "+built.base)) {
		t.Errorf("templates list: %v\n%s", err, out)
	}
}
