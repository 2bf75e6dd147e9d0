package emulatortest

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// busyboxPaths are where a static busybox is looked for (Debian's
// busybox-static installs /bin/busybox).
var busyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// ErrNoBusybox is TestImage's error on a machine without a static busybox
// to make the image from; SkipIfNoDocker skips on it.
var ErrNoBusybox = errors.New("no static busybox on this machine to make the test image from: apt-get install busybox-static")

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// TestImage returns a small local image for sandboxes, made offline: a
// rootfs holding the host's static busybox and its applets, imported into
// the engine. It is built once per content (the tag is a hash of the
// busybox binary) and never pulled. The image has no /workspace, so tests
// see that rtemu makes it.
func TestImage(ctx context.Context) (string, error) {
	routeEngine()
	imageOnce.Do(func() { imageRef, imageErr = buildTestImage(ctx) })
	return imageRef, imageErr
}

// readBusybox reads the first static busybox found, and says where it was.
func readBusybox() ([]byte, string, error) {
	for _, p := range busyboxPaths {
		if b, err := os.ReadFile(p); err == nil {
			return b, p, nil
		}
	}
	return nil, "", ErrNoBusybox
}

func buildTestImage(ctx context.Context) (string, error) {
	bin, binPath, err := readBusybox()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	ref := "rtemu-test/busybox:" + hex.EncodeToString(sum[:6])

	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	}
	out, err := exec.CommandContext(ctx, binPath, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeRootfs(pw, bin, strings.Fields(string(out)), nil)) }()
	rc, err := cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		return "", fmt.Errorf("import test image: %w", err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return "", fmt.Errorf("import test image: %w", err)
	}
	return ref, nil
}

// writeRootfs writes the image's files; mark, when not nil, goes in
// /etc/rtemu-test-image (an image of its own, sharing no layer).
func writeRootfs(w io.Writer, busybox []byte, applets []string, mark []byte) error {
	tw := tar.NewWriter(w)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "etc", "root", "tmp", "proc", "sys", "dev", "usr", "usr/bin", "var", "run"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := dir(d, mode); err != nil {
			return err
		}
	}
	if err := file("bin/busybox", 0o755, busybox); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	if mark != nil {
		if err := file("etc/rtemu-test-image", 0o644, mark); err != nil {
			return err
		}
	}
	return tw.Close()
}

// OwnTestImage makes an image like TestImage's that shares no layer with
// any other (its one layer holds a mark of its own), named
// rtemu-test/own-<mark>:1, for a test that removes it or its layers from
// the engine. It is removed when the test ends.
func OwnTestImage(t testing.TB) string {
	t.Helper()
	routeEngine()
	bin, binPath, err := readBusybox()
	if err != nil {
		t.Skip(err)
	}
	mark := make([]byte, 6)
	_, _ = rand.Read(mark)
	ref := "rtemu-test/own-" + hex.EncodeToString(mark) + ":1"
	ctx := t.Context()
	out, err := exec.CommandContext(ctx, binPath, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeRootfs(pw, bin, strings.Fields(string(out)), []byte(hex.EncodeToString(mark)+"\n")))
	}()
	rc, err := cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatalf("import an image of the test's own: %v", err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		t.Fatalf("import an image of the test's own: %v", err)
	}
	t.Cleanup(func() {
		d := Docker(t)
		if err := d.RemoveImage(context.Background(), ref); err != nil {
			t.Logf("remove %s: %v", ref, err)
		}
	})
	return ref
}
