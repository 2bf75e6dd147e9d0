package emulator_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/state"
)

// saveStateBytes saves a server's state, with choices, into memory.
func saveStateBytes(t *testing.T, srv *emulatortest.Server, opts ...emulatortest.SaveOption) []byte {
	t.Helper()
	var b bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.SaveState(ctx, &b, opts...); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readManifest(t *testing.T, b []byte) state.Manifest {
	t.Helper()
	m, err := state.ReadManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// imagesPresent says which of refs the engine has.
func imagesPresent(t *testing.T, refs []string) []string {
	t.Helper()
	var out []string
	for _, ref := range refs {
		if ok, err := emulatortest.Docker(t).ImagePresent(context.Background(), ref); err != nil || ok {
			out = append(out, ref)
		}
	}
	return out
}

// A save that refers to base images by name leaves them out of the
// archive (version 2, the image named in the manifest); it loads where the
// engine has the image, and is refused, naming it and changing nothing,
// where it does not.
func TestStateReferenceImages(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	own := emulatortest.OwnTestImage(t)
	c := newClient(t, emulatortest.WithTemplate("own", own))
	id := c.create(map[string]any{"name": "ref", "template": "own"})["id"].(string)
	c.sh(id, "echo referenced > /root/r.txt")

	full := saveStateBytes(t, c.srv)
	thin := saveStateBytes(t, c.srv, emulatortest.ReferenceImages())
	thin2 := saveStateBytes(t, c.srv, emulatortest.ReferenceImages())
	mf, mt := readManifest(t, full), readManifest(t, thin)
	if mf.Version != 1 || len(mf.Referenced) != 0 || mf.Sandboxes[0].Base != "" {
		t.Errorf("a save holding its images: version %d, referenced %v, base %q", mf.Version, mf.Referenced, mf.Sandboxes[0].Base)
	}
	if mt.Version != 2 || !slices.Equal(mt.Referenced, []string{own}) || len(mt.Sandboxes) != 1 || mt.Sandboxes[0].Base != own {
		t.Fatalf("a save referring to images: %+v", mt)
	}
	// The image (a static busybox, about 2 MB) is what the full one has
	// more; the sandbox's own layer is a few KB.
	t.Logf("archive: %d bytes holding the base image, %d referring to it", len(full), len(thin))
	if len(thin)*4 > len(full) {
		t.Errorf("the archive referring to its image is %d bytes; the one holding it %d", len(thin), len(full))
	}
	if left := imagesPresent(t, append(mt.Images, mf.Images...)); len(left) > 0 {
		t.Fatalf("the saves' snapshots are left in the engine: %v", left)
	}

	// Loaded where the image is (the snapshots are not: their own layers
	// come from the archive).
	c2 := newClient(t)
	if r := c2.do("POST", "/_emulator/state", thin, "Content-Type", "application/x-tar"); r.Status != http.StatusOK {
		t.Fatalf("load referring to a present image: %d %s", r.Status, r.Body)
	}
	if out := c2.sh(id, "cat /root/r.txt"); out != "referenced\n" {
		t.Fatalf("loaded sandbox's file: %q", out)
	}

	// Where the image is not: refused before anything changed.
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	testwait.Until(t, time.Minute, func() bool { return containerGone(t, id) }, "the container of %s is not removed", id)
	if err := emulatortest.Docker(t).RemoveImage(context.Background(), own); err != nil {
		t.Fatal(err)
	}
	if ok, _ := emulatortest.Docker(t).ImagePresent(context.Background(), own); ok {
		t.Fatalf("%s still present", own)
	}
	data := t.TempDir()
	c3 := newClient(t, emulatortest.WithDataDir(data))
	keep := c3.create(map[string]any{"name": "keep"})["id"].(string)
	c3.sh(keep, "echo mine > /root/k.txt")
	r := c3.do("POST", "/_emulator/state", thin2, "Content-Type", "application/x-tar")
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), own) {
		t.Fatalf("load referring to a missing image: %d %s", r.Status, r.Body)
	}
	if out := c3.sh(keep, "cat /root/k.txt"); out != "mine\n" {
		t.Fatalf("after the refused load: %q", out)
	}
	c3.must(http.StatusNotFound, "GET", "/v1/sandboxes/"+id, nil)
	if left := imagesPresent(t, readManifest(t, thin2).Images); len(left) > 0 {
		t.Errorf("a refused load left images: %v", left)
	}
	ents, _ := os.ReadDir(data)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "state-load-") || e.Name() == "seed" {
			t.Errorf("a refused load left %s", filepath.Join(data, e.Name()))
		}
	}
}

// A load as on another machine: the engine has none of what the archive
// carries (the sandboxes' snapshots, and the image they were made from, an
// image of this test's own), and the data dir is new; the sandboxes run
// with their files and the workspace has its files.
func TestStateLoadOnAnotherMachine(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	own := emulatortest.OwnTestImage(t)
	c := newClient(t, emulatortest.WithTemplate("own", own))
	ws := c.workspace(map[string]any{"name": "src"})
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+ws+"/files", map[string]any{"name": "main.go", "type": "file", "contents": "package main"})
	run := c.create(map[string]any{"name": "run", "template": "own", "mounts": []map[string]any{{"workspaceId": ws, "path": "/workspace/src"}}})["id"].(string)
	c.sh(run, "mkdir -p /opt/tool && echo toolchain > /opt/tool/version")
	paused := c.create(map[string]any{"name": "cold", "template": "own"})["id"].(string)
	c.sh(paused, "echo cold > /root/f.txt")
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+paused+"/pause", nil)
	c.waitStatus(paused, "paused")
	archive := saveStateBytes(t, c.srv)
	m := readManifest(t, archive)
	if len(m.Images) != 2 || len(m.Referenced) != 0 {
		t.Fatalf("manifest: %+v", m)
	}

	// Everything the archive carries leaves the engine.
	for _, id := range []string{run, paused} {
		c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	}
	testwait.Until(t, time.Minute, func() bool { return containerGone(t, run) && containerGone(t, paused) }, "containers not removed")
	if err := emulatortest.Docker(t).RemoveImage(context.Background(), own); err != nil {
		t.Fatal(err)
	}
	if left := imagesPresent(t, append([]string{own}, m.Images...)); len(left) > 0 {
		t.Fatalf("still in the engine: %v", left)
	}

	c2 := newClient(t, emulatortest.WithDataDir(t.TempDir()))
	if r := c2.do("POST", "/_emulator/state", archive, "Content-Type", "application/x-tar"); r.Status != http.StatusOK {
		t.Fatalf("load: %d %s", r.Status, r.Body)
	}
	if st := c2.must(http.StatusOK, "GET", "/v1/sandboxes/"+run, nil).Data()["status"]; st != "running" {
		t.Fatalf("run is %v", st)
	}
	if out := c2.sh(run, "cat /opt/tool/version /workspace/src/main.go"); out != "toolchain\npackage main" {
		t.Fatalf("run's files: %q", out)
	}
	// The image's own file, from the base layers the archive brought.
	if out := c2.sh(run, "cat /etc/rtemu-test-image"); !strings.Contains(own, "own-"+strings.TrimSpace(out)+":") {
		t.Fatalf("the base image's file: %q (image %s)", out, own)
	}
	if st := c2.must(http.StatusOK, "GET", "/v1/sandboxes/"+paused, nil).Data()["status"]; st != "paused" {
		t.Fatalf("cold is %v", st)
	}
	c2.must(http.StatusOK, "POST", "/v1/sandboxes/"+paused+"/resume", nil)
	c2.waitStatus(paused, "running")
	if out := c2.sh(paused, "cat /root/f.txt"); out != "cold\n" {
		t.Fatalf("cold's files: %q", out)
	}
	if r := c2.must(http.StatusOK, "GET", "/v1/workspaces/"+ws+"/direct?path=/main.go", nil); string(r.Body) != "package main" {
		t.Fatalf("workspace file: %q", r.Body)
	}
}
