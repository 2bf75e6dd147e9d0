package emulator_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/state"
)

// rewriteArchive copies an archive entry by entry through edit, which may
// change an entry or drop it (nil header).
func rewriteArchive(t *testing.T, in []byte, edit func(h *tar.Header, body []byte) (*tar.Header, []byte)) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(in)), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		h, body = edit(h, body)
		if h == nil {
			continue
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func editManifest(t *testing.T, in []byte, fn func(m map[string]any)) []byte {
	return rewriteArchive(t, in, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name != state.ManifestName {
			return h, body
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		b, _ := json.Marshal(m)
		return h, b
	})
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

// A truncated, corrupt, foreign or newer archive is refused with a 400 that
// says which, and changes nothing: the sandboxes, workspaces and seed are
// as before, and no folder or image of the load is left.
func TestStateLoadRefusesBadArchives(t *testing.T) {
	t.Parallel()
	fe := emulatortest.Fake()
	c := startClient(t, emulatortest.WithEngine(fe))
	sb := c.create(map[string]any{"name": "before"})["id"].(string)
	ws := c.workspace(map[string]any{"name": "kept"})
	var valid bytes.Buffer
	if err := c.srv.SaveState(context.Background(), &valid); err != nil {
		t.Fatal(err)
	}
	good := valid.Bytes()
	m, err := state.ReadManifest(bytes.NewReader(good))
	if err != nil || len(m.Images) != 1 {
		t.Fatalf("manifest of the save: %+v %v", m, err)
	}
	corruptRecords := rewriteArchive(t, good, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name == state.RecordsName {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
		}
		return h, body
	})
	noTrailer := rewriteArchive(t, good, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name == state.TrailerName {
			return nil, nil
		}
		return h, body
	})
	foreignTar := rewriteArchive(t, good, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name == state.ManifestName {
			h.Name = "hello.txt"
		}
		return h, body
	})
	for _, tc := range []struct {
		name, kind, says string
		body             []byte
	}{
		{"empty", state.Foreign, "not an rtemu state archive", nil},
		{"not a tar", state.Foreign, "not an rtemu state archive", []byte(strings.Repeat("plain text, not an archive\n", 100))},
		{"another tar", state.Foreign, "first entry is", foreignTar},
		{"another JSON manifest", state.Foreign, "does not name the format", editManifest(t, good, func(m map[string]any) { m["format"] = "cloud-pod" })},
		{"newer format", state.Newer, fmt.Sprintf("format version %d", state.Version+1), editManifest(t, good, func(m map[string]any) { m["version"] = state.Version + 1 })},
		{"newer records", state.Newer, "newer rtemu", editManifest(t, good, func(m map[string]any) { m["schema"] = 999 })},
		{"cut in half", state.Truncated, "truncated", good[:len(good)/2]},
		{"cut before its trailer", state.Truncated, "without its trailer", noTrailer},
		{"a byte changed", state.Corrupt, "checksum", corruptRecords},
		{"a byte changed, gzipped", state.Corrupt, "checksum", gzipped(corruptRecords)},
		{"bad gzip", state.Corrupt, "gzip", append([]byte{0x1f, 0x8b}, good[:100]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "/_emulator/state", tc.body, "Content-Type", "application/x-tar")
			if r.Status != http.StatusBadRequest || r.ErrCode() != "bad_request" || !strings.Contains(string(r.Body), tc.says) {
				t.Fatalf("status %d, body %s; want 400 saying %q", r.Status, r.Body, tc.says)
			}
			d, _ := r.JSON["error"].(map[string]any)["details"].([]any)
			if len(d) != 1 || d[0].(map[string]any)["message"] != tc.kind {
				t.Fatalf("details %v, want the kind %s", d, tc.kind)
			}
			if got := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+sb, nil).Data()["status"]; got != "running" {
				t.Fatalf("sandbox after a refused load: %v", got)
			}
			c.must(http.StatusOK, "GET", "/v1/workspaces/"+ws, nil)
			if ok, _ := fe.ImagePresent(context.Background(), m.Images[0]); ok {
				t.Fatalf("image %s of the refused archive is left", m.Images[0])
			}
			left, _ := filepath.Glob(filepath.Join(c.srv.DataDir, "state-*"))
			if _, err := os.Stat(filepath.Join(c.srv.DataDir, "seed")); len(left) > 0 || err == nil {
				t.Fatalf("left by the refused load: %v, seed %v", left, err)
			}
		})
	}
	// The archive itself loads.
	if r := c.do("POST", "/_emulator/state", good, "Content-Type", "application/x-tar"); r.Status != http.StatusOK || r.Data()["sandboxes"] != float64(1) {
		t.Fatalf("load of the good archive: %d %s", r.Status, r.Body)
	}
	c.waitStatus(sb, "running")
}

// What a load killed before its end left (its folder, images it brought
// into the engine) is gone after the next start, and the state is the one
// before the load.
func TestStateLoadLeftoversGoAtStart(t *testing.T) {
	t.Parallel()
	fe := emulatortest.Fake()
	dir := t.TempDir()
	staging := filepath.Join(dir, "state-load-123")
	if err := os.MkdirAll(filepath.Join(staging, "workspaces", "w"), 0o755); err != nil {
		t.Fatal(err)
	}
	const ref = "rtemu-state/sandbox-killedload1:abc"
	b, _ := json.Marshal(state.Manifest{Format: state.Format, Version: state.Version, ID: "abc", Images: []string{ref}})
	if err := os.WriteFile(filepath.Join(staging, state.ManifestName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var imgs bytes.Buffer
	tw := tar.NewWriter(&imgs)
	_ = tw.WriteHeader(&tar.Header{Name: "fake-image/" + ref, Mode: 0o644, Typeflag: tar.TypeReg})
	_ = tw.Close()
	if err := fe.LoadImages(context.Background(), &imgs); err != nil {
		t.Fatal(err)
	}
	c := startClient(t, emulatortest.WithEngine(fe), emulatortest.WithDataDir(dir))
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Fatalf("the killed load's folder: %v", err)
	}
	if ok, _ := fe.ImagePresent(context.Background(), ref); ok {
		t.Fatal("the killed load's image is left")
	}
	if n := len(c.must(http.StatusOK, "GET", "/v1/sandboxes", nil).List()); n != 0 {
		t.Fatalf("%d sandboxes", n)
	}
}

// On an engine that cannot capture a file system, a save with sandboxes is
// refused naming each one; records alone save.
func TestStateSaveWithoutSnapshot(t *testing.T) {
	t.Parallel()
	fe := emulatortest.Fake()
	caps := fe.Capabilities()
	caps.Snapshot = false
	fe.SetCapabilities(caps)
	c := startClient(t, emulatortest.WithEngine(fe))
	c.workspace(map[string]any{"name": "records only"})
	if r := c.do("GET", "/_emulator/state", nil); r.Status != http.StatusOK || !bytes.HasPrefix(r.Body[257:], []byte("ustar")) {
		t.Fatalf("save without sandboxes: %d", r.Status)
	}
	a := c.create(map[string]any{"name": "a"})["id"].(string)
	b := c.create(map[string]any{"name": "b"})["id"].(string)
	r := c.do("GET", "/_emulator/state", nil)
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), a) || !strings.Contains(string(r.Body), b) ||
		!strings.Contains(string(r.Body), "cannot capture its file system") {
		t.Fatalf("save with sandboxes: %d %s", r.Status, r.Body)
	}
	if left, _ := filepath.Glob(filepath.Join(c.srv.DataDir, "state-*")); len(left) > 0 {
		t.Fatalf("left by the refused save: %v", left)
	}
}

// A sandbox saved paused for idleness comes back paused for idleness: a
// command wakes it, as before the save.
func TestStateKeepsIdlePause(t *testing.T) {
	t.Parallel()
	c := startClient(t, emulatortest.WithFake())
	id := c.create(map[string]any{"name": "sleepy"})["id"].(string)
	c.must(http.StatusOK, "POST", "/_emulator/sandboxes/"+id+"/expire-idle", nil)
	c.waitStatus(id, "paused")
	var archive bytes.Buffer
	if err := c.srv.SaveState(context.Background(), &archive); err != nil {
		t.Fatal(err)
	}
	c2 := startClient(t, emulatortest.WithFake())
	if r := c2.do("POST", "/_emulator/state", archive.Bytes(), "Content-Type", "application/x-tar"); r.Status != http.StatusOK {
		t.Fatalf("load: %d %s", r.Status, r.Body)
	}
	c2.waitStatus(id, "paused")
	if res := c2.exec(id, map[string]any{"command": "echo awake"}); res["stdout"] != "awake\n" {
		t.Fatalf("exec on the loaded idle-paused sandbox: %v", res)
	}
	c2.waitStatus(id, "running")
}

// Writes racing a save are in its archive whole or not at all: workspaces
// made (record and folder, with a file) while saves run come back, each
// with its file, and no folder comes back without its record.
func TestStateSaveIsOneMoment(t *testing.T) {
	t.Parallel()
	c := startClient(t, emulatortest.WithFake())
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			r := c.do("POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("w%d", n)})
			if r.Status != http.StatusCreated {
				continue // ended by a save's gate: not made
			}
			id := r.Data()["id"].(string)
			c.do("POST", "/v1/workspaces/"+id+"/files", map[string]any{"name": "f.txt", "type": "file", "contents": id})
			n++
		}
	}()
	var archives [][]byte
	for i := 0; i < 3; i++ {
		var b bytes.Buffer
		if err := c.srv.SaveState(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		archives = append(archives, b.Bytes())
	}
	close(stop)
	if n := <-done; n == 0 {
		t.Fatal("no workspace was made during the saves")
	}
	for i, a := range archives {
		c2 := startClient(t, emulatortest.WithFake())
		if r := c2.do("POST", "/_emulator/state", a, "Content-Type", "application/x-tar"); r.Status != http.StatusOK {
			t.Fatalf("load %d: %d %s", i, r.Status, r.Body)
		}
		list := c2.must(http.StatusOK, "GET", "/v1/workspaces", nil).Data()["workspaces"].([]any)
		for _, w := range list {
			id := w.(map[string]any)["id"].(string)
			// The file may have come after the save; the folder may not.
			if r := c2.do("GET", "/v1/workspaces/"+id+"/files", nil); r.Status != http.StatusOK {
				t.Errorf("archive %d: workspace %s without its folder: %d %s", i, id, r.Status, r.Body)
			}
			if r := c2.do("GET", "/v1/workspaces/"+id+"/direct?path=/f.txt", nil); r.Status == http.StatusOK && string(r.Body) != id {
				t.Errorf("archive %d: workspace %s's file holds %q", i, id, r.Body)
			}
		}
		dirs, _ := os.ReadDir(filepath.Join(c2.srv.DataDir, "workspaces"))
		if len(dirs) != len(list) {
			t.Errorf("archive %d: %d workspace folders for %d records", i, len(dirs), len(list))
		}
	}
}
