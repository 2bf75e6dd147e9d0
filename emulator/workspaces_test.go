package emulator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const seedWorkspace = "9b84ef42-9c3a-4930-9d4c-45c7f5c22d8e"

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// workspace creates a workspace and returns its id.
func (c *client) workspace(body map[string]any) string {
	c.t.Helper()
	if _, ok := body["name"]; !ok {
		body["name"] = "ws"
	}
	return c.must(http.StatusCreated, "POST", "/v1/workspaces", body).Data()["id"].(string)
}

// folder is a workspace's folder on this host.
func (c *client) folder(ws string) string {
	return filepath.Join(c.srv.DataDir, "workspaces", ws)
}

// tree lists a folder on the host: path, type and size of everything in
// it, to show that a refused request changed nothing.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(dir, p)
		out = append(out, fmt.Sprintf("%s %v %d", r, fi.Mode(), sizeOf(fi)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sizeOf(fi fs.FileInfo) int64 {
	if fi.Mode().IsRegular() {
		return fi.Size()
	}
	return 0
}

// upload sends a multipart upload (field "file", and "name" when given).
func (c *client) upload(ws, dir, filename, name string, content []byte) response {
	c.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if name != "" {
		_ = mw.WriteField("name", name)
	}
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		c.t.Fatal(err)
	}
	_, _ = fw.Write(content)
	_ = mw.Close()
	p := "/v1/workspaces/" + ws + "/upload"
	if dir != "" {
		p += "/" + escapePath(dir)
	}
	return c.do("POST", p, b.Bytes(), "Content-Type", mw.FormDataContentType())
}

// escapePath escapes each element of a workspace path for a URL.
func escapePath(p string) string {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// download fetches a file's bytes through …/direct.
func (c *client) download(ws, p string) response {
	c.t.Helper()
	return c.do("GET", "/v1/workspaces/"+ws+"/direct?path="+url.QueryEscape(p), nil)
}

// listFiles lists a workspace folder (the bare array).
func (c *client) listFiles(ws, dir string, hidden bool) []map[string]any {
	c.t.Helper()
	p := "/v1/workspaces/" + ws + "/files"
	if dir != "" && dir != "/" {
		p += "/" + escapePath(dir)
	}
	if hidden {
		p += "?showHidden=true"
	}
	r := c.must(http.StatusOK, "GET", p, nil)
	var out []map[string]any
	if err := jsonUnmarshal(r.Body, &out); err != nil {
		c.t.Fatalf("listing is not a bare array: %s", r.Body)
	}
	return out
}

func names(entries []map[string]any) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e["value"].(string))
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mounted creates a running sandbox mounting ws at path.
func (c *client) mounted(ws, path string, readOnly bool) string {
	c.t.Helper()
	sb := c.create(map[string]any{"mounts": []map[string]any{{"workspaceId": ws, "path": path, "readOnly": readOnly}}})
	return sb["id"].(string)
}

// TestWorkspaceMetadata covers create (name, slug, the id extension), list
// with storage totals, get by id and slug, rename and usage.
func TestWorkspaceMetadata(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)

	r := c.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "Docs Project"})
	w := r.Data()
	id := w["id"].(string)
	if !uuidRE.MatchString(id) || w["slug"] != "docs-project" || w["name"] != "Docs Project" ||
		w["sizeBytes"] != float64(0) || w["isPersonal"] != false || w["lastAccessedAt"] != nil || !timeRE.MatchString(w["createdAt"].(string)) {
		t.Fatalf("created %v", w)
	}
	if fi, err := os.Stat(c.folder(id)); err != nil || !fi.IsDir() {
		t.Fatalf("no folder for %s: %v", id, err)
	}
	// A second workspace of the same name gets a numbered slug; a chosen
	// slug and a chosen id are kept.
	w2 := c.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "Docs Project"}).Data()
	if w2["slug"] != "docs-project-2" {
		t.Errorf("second slug %v", w2["slug"])
	}
	upper := strings.ToUpper(seedWorkspace)
	w3 := c.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "Seed", "slug": "seed", "id": upper}).Data()
	if w3["id"] != seedWorkspace || w3["slug"] != "seed" {
		t.Errorf("chosen id/slug gave %v", w3)
	}
	for _, tc := range []struct {
		name  string
		body  any
		code  int
		field string
	}{
		{"no name", `{}`, 400, "name"},
		{"blank name", `{"name":"  "}`, 400, "name"},
		{"control in name", `{"name":"a\u0007b"}`, 400, "name"},
		{"long name", map[string]any{"name": strings.Repeat("n", 101)}, 400, "name"},
		{"name not a string", `{"name":5}`, 400, "name"},
		{"bad slug", `{"name":"x","slug":"Not A Slug"}`, 400, "slug"},
		{"bad id", `{"name":"x","id":"nope"}`, 400, "id"},
		{"id taken", map[string]any{"name": "x", "id": seedWorkspace}, 409, ""},
		{"slug taken", `{"name":"x","slug":"seed"}`, 409, ""},
		{"not JSON", `name=x`, 400, "body"},
	} {
		r := c.do("POST", "/v1/workspaces", tc.body)
		if r.Status != tc.code {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.Status, tc.code, r.Body)
			continue
		}
		if tc.field != "" {
			details, _ := r.JSON["error"].(map[string]any)["details"].([]any)
			if len(details) == 0 || details[0].(map[string]any)["field"] != tc.field {
				t.Errorf("%s: details %v, want field %s", tc.name, details, tc.field)
			}
		}
	}

	// Storage totals follow the files.
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+id+"/files", map[string]any{"name": "a.txt", "contents": "12345"})
	c.upload(seedWorkspace, "", "b.bin", "", make([]byte, 1000))
	r = c.must(http.StatusOK, "GET", "/v1/workspaces", nil)
	list := r.Data()["workspaces"].([]any)
	storage := r.Data()["storage"].(map[string]any)
	if len(list) != 3 || storage["usedBytes"] != float64(1005) || storage["unlimited"] != true {
		t.Fatalf("list %v storage %v", list, storage)
	}
	if first := list[0].(map[string]any); first["id"] != seedWorkspace || first["sizeBytes"] != float64(1000) {
		t.Errorf("newest first with its size: %v", first)
	}

	// Get by id or slug; unknown is 404.
	got := c.must(http.StatusOK, "GET", "/v1/workspaces/"+id, nil).Data()
	if got["sizeBytes"] != float64(5) || got["lastAccessedAt"] == nil {
		t.Errorf("get %v", got)
	}
	if c.must(http.StatusOK, "GET", "/v1/workspaces/seed", nil).Data()["id"] != seedWorkspace {
		t.Error("get by slug")
	}
	if r := c.do("GET", "/v1/workspaces/6f1c0c52-6a43-4c3e-9e0e-9d5e1b2f1a00", nil); r.Status != 404 || r.ErrCode() != "not_found" {
		t.Errorf("unknown: %d %s", r.Status, r.Body)
	}

	// Rename keeps id and slug.
	rn := c.must(http.StatusOK, "PATCH", "/v1/workspaces/"+id, map[string]any{"name": "Renamed"}).Data()
	if rn["name"] != "Renamed" || rn["slug"] != "docs-project" || rn["id"] != id {
		t.Errorf("renamed %v", rn)
	}
	for _, body := range []string{`{}`, `{"name":""}`, `{"name":null}`, `{"name":3}`} {
		if r := c.do("PATCH", "/v1/workspaces/"+id, body); r.Status != 400 {
			t.Errorf("PATCH %s: %d", body, r.Status)
		}
	}
	if c.must(http.StatusOK, "GET", "/v1/workspaces/"+id, nil).Data()["name"] != "Renamed" {
		t.Error("a rejected rename changed the name")
	}

	// Usage names the sandboxes that mount it.
	u := c.must(http.StatusOK, "GET", "/v1/workspaces/"+id+"/usage", nil).Data()
	if u["inUse"] != false || len(u["sandboxes"].([]any)) != 0 {
		t.Fatalf("usage %v", u)
	}
	sb := c.mounted(id, "/workspace/data", true)
	u = c.must(http.StatusOK, "GET", "/v1/workspaces/"+id+"/usage", nil).Data()
	uses := u["sandboxes"].([]any)
	if u["inUse"] != true || len(uses) != 1 {
		t.Fatalf("usage %v", u)
	}
	if use := uses[0].(map[string]any); use["id"] != sb || use["path"] != "/workspace/data" || use["readOnly"] != true || use["status"] != "running" {
		t.Errorf("use %v", use)
	}
}

// TestWorkspaceDelete: a mounted workspace is refused with
// WORKSPACE_IN_USE and nothing changes; once its sandbox is destroyed it
// goes, folder and all; force deletes a mounted one.
func TestWorkspaceDelete(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	ws := c.workspace(map[string]any{})
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+ws+"/files", map[string]any{"name": "keep.txt", "contents": "x"})
	sb := c.mounted(ws, "/workspace", false)
	before := tree(t, c.folder(ws))

	r := c.do("DELETE", "/v1/workspaces/"+ws, nil)
	if r.Status != http.StatusConflict || r.ErrCode() != "WORKSPACE_IN_USE" || !strings.Contains(string(r.Body), sb) {
		t.Fatalf("delete of a mounted workspace: %d %s", r.Status, r.Body)
	}
	if got := tree(t, c.folder(ws)); !equal(got, before) {
		t.Fatalf("a refused delete changed the folder: %v", got)
	}
	c.must(http.StatusOK, "GET", "/v1/workspaces/"+ws, nil)
	if r := c.do("DELETE", "/v1/workspaces/"+ws+"?force=maybe", nil); r.Status != 400 {
		t.Errorf("force=maybe: %d", r.Status)
	}

	// A paused sandbox still holds it.
	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+sb+"/pause", nil)
	c.waitStatus(sb, "paused")
	if r := c.do("DELETE", "/v1/workspaces/"+ws, nil); r.ErrCode() != "WORKSPACE_IN_USE" {
		t.Fatalf("paused sandbox: %d %s", r.Status, r.Body)
	}
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+sb, nil)
	d := c.must(http.StatusOK, "DELETE", "/v1/workspaces/"+ws, nil).Data()
	if d["id"] != ws || d["deleted"] != true {
		t.Fatalf("delete %v", d)
	}
	if _, err := os.Stat(c.folder(ws)); !os.IsNotExist(err) {
		t.Fatalf("folder still there: %v", err)
	}
	if r := c.do("GET", "/v1/workspaces/"+ws, nil); r.Status != 404 {
		t.Fatalf("deleted workspace answers %d", r.Status)
	}
	if r := c.do("DELETE", "/v1/workspaces/"+ws, nil); r.Status != 404 {
		t.Fatalf("second delete %d", r.Status)
	}
	// Its id can no longer be mounted.
	r = c.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu",
		"mounts": []map[string]any{{"workspaceId": ws, "path": "/workspace"}}})
	if r.Status != 400 {
		t.Fatalf("mount of a deleted workspace: %d %s", r.Status, r.Body)
	}

	// force deletes a mounted one.
	ws2 := c.workspace(map[string]any{})
	c.mounted(ws2, "/workspace", false)
	c.must(http.StatusOK, "DELETE", "/v1/workspaces/"+ws2+"?force=true", nil)
	if _, err := os.Stat(c.folder(ws2)); !os.IsNotExist(err) {
		t.Fatalf("force: folder still there: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.srv.DataDir, "workspaces")); len(ents) != 0 {
		t.Fatalf("workspaces folder holds %d leftovers", len(ents))
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSeedCreateWithWorkspace replays the seed page's full request once its
// workspace exists.
func TestSeedCreateWithWorkspace(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	body, err := os.ReadFile("testdata/seed-create-sandbox.json")
	if err != nil {
		t.Fatal(err)
	}
	// Before the workspace exists, the request is refused.
	if r := c.do("POST", "/v1/sandboxes", string(body)); r.Status != 400 || !strings.Contains(string(r.Body), "mounts[0].workspaceId") {
		t.Fatalf("without the workspace: %d %s", r.Status, r.Body)
	}
	c.workspace(map[string]any{"id": seedWorkspace, "name": "Seed"})
	c.upload(seedWorkspace, "", "README.md", "", []byte("from the file API\n"))
	r := c.must(http.StatusCreated, "POST", "/v1/sandboxes", string(body))
	d := r.Data()
	mounts := d["mounts"].([]any)
	if len(mounts) != 1 || mounts[0].(map[string]any)["workspaceId"] != seedWorkspace || mounts[0].(map[string]any)["path"] != "/workspace" {
		t.Fatalf("mounts %v", d["mounts"])
	}
	id := d["id"].(string)
	c.waitStatus(id, "running")
	if out := c.sh(id, "cat /workspace/README.md; echo $NODE_ENV"); out != "from the file API\ndevelopment\n" {
		t.Fatalf("in the sandbox: %q", out)
	}
}

// TestMounts: files go both ways between the file API and sandboxes, two
// sandboxes share a workspace, files outlive a sandbox, readOnly holds
// inside the sandbox, and sub-paths mount.
func TestMounts(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ws := c.workspace(map[string]any{})
	content := []byte("uploaded through the API\n")
	c.upload(ws, "", "up.txt", "", content)

	a := c.mounted(ws, "/workspace", false)
	b := c.mounted(ws, "/workspace/shared", false)
	ro := c.mounted(ws, "/workspace", true)

	// API → sandbox.
	if out := c.sh(a, "cat /workspace/up.txt"); out != string(content) {
		t.Fatalf("sandbox read %q", out)
	}
	// Sandbox → API.
	c.sh(a, "mkdir -p /workspace/out && printf 'made in a' > /workspace/out/a.txt")
	if r := c.download(ws, "/out/a.txt"); r.Status != 200 || string(r.Body) != "made in a" {
		t.Fatalf("API read %d %q", r.Status, r.Body)
	}
	if got := names(c.listFiles(ws, "/out", false)); !equal(got, []string{"a.txt"}) {
		t.Fatalf("listing %v", got)
	}
	// Two sandboxes see each other's writes, at whatever path they mount.
	c.sh(b, "printf 'made in b' > /workspace/shared/b.txt")
	if out := c.sh(a, "cat /workspace/b.txt"); out != "made in b" {
		t.Fatalf("a reads b's write: %q", out)
	}
	if out := c.sh(b, "cat /workspace/shared/out/a.txt"); out != "made in a" {
		t.Fatalf("b reads a's write: %q", out)
	}
	// readOnly is enforced inside the sandbox.
	res := c.exec(ro, map[string]any{"command": "echo x > /workspace/ro.txt"})
	if res["exitCode"] == float64(0) || !strings.Contains(res["stderr"].(string), "Read-only") {
		t.Fatalf("write to a read-only mount: %v", res)
	}
	for _, cmd := range []string{"rm /workspace/up.txt", "mkdir /workspace/d", "touch /workspace/up.txt"} {
		if res := c.exec(ro, map[string]any{"command": cmd}); res["exitCode"] == float64(0) {
			t.Fatalf("%q succeeded on a read-only mount", cmd)
		}
	}
	if out := c.sh(ro, "cat /workspace/b.txt"); out != "made in b" {
		t.Fatalf("read-only read %q", out)
	}
	// Destroying sandboxes keeps the files; a new sandbox finds them.
	for _, id := range []string{a, b, ro} {
		c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	}
	if r := c.download(ws, "/out/a.txt"); string(r.Body) != "made in a" {
		t.Fatalf("after destroy: %d %q", r.Status, r.Body)
	}
	again := c.mounted(ws, "/workspace", false)
	if out := c.sh(again, "cat /workspace/out/a.txt /workspace/b.txt"); out != "made in amade in b" {
		t.Fatalf("new sandbox reads %q", out)
	}
	// The same workspace at two paths of one sandbox is one folder.
	two := c.create(map[string]any{"mounts": []map[string]any{
		{"workspaceId": ws, "path": "/workspace"}, {"workspaceId": ws, "path": "/workspace/again/"},
	}})
	if out := c.sh(two["id"].(string), "echo y > /workspace/again/y.txt; cat /workspace/y.txt"); out != "y\n" {
		t.Fatalf("double mount %q", out)
	}
	if p := two["mounts"].([]any)[1].(map[string]any)["path"]; p != "/workspace/again" {
		t.Errorf("mount path not cleaned: %v", p)
	}
}

// TestMountRejects: bad mounts are 400s and nothing is created.
func TestMountRejects(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	ws := c.workspace(map[string]any{})
	for _, tc := range []struct {
		name, mounts, field string
	}{
		{"unknown workspace", `[{"workspaceId":"6f1c0c52-6a43-4c3e-9e0e-9d5e1b2f1a00","path":"/workspace"}]`, "mounts[0].workspaceId"},
		{"not a uuid", `[{"workspaceId":"ws","path":"/workspace"}]`, "mounts[0].workspaceId"},
		{"outside /workspace", `[{"workspaceId":"` + ws + `","path":"/etc"}]`, "mounts[0].path"},
		{"dot dot", `[{"workspaceId":"` + ws + `","path":"/workspace/../etc"}]`, "mounts[0].path"},
		{"relative", `[{"workspaceId":"` + ws + `","path":"workspace"}]`, "mounts[0].path"},
		{"twice", `[{"workspaceId":"` + ws + `","path":"/workspace"},{"workspaceId":"` + ws + `","path":"/workspace/"}]`, "mounts[1].path"},
		{"readOnly not bool", `[{"workspaceId":"` + ws + `","path":"/workspace","readOnly":"yes"}]`, "mounts.readOnly"},
	} {
		r := c.do("POST", "/v1/sandboxes", `{"template":"base-ubuntu","mounts":`+tc.mounts+`}`)
		details, _ := r.JSON["error"].(map[string]any)["details"].([]any)
		if r.Status != 400 || len(details) == 0 || details[0].(map[string]any)["field"] != tc.field {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
		}
	}
	if n := len(c.must(http.StatusOK, "GET", "/v1/sandboxes", nil).List()); n != 0 {
		t.Fatalf("%d sandboxes after rejected creates", n)
	}
}

// TestOwnership: what the API makes is root's to use in the sandbox, and
// what root makes in the sandbox, even private to root, the API can read,
// change and delete.
func TestOwnership(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ws := c.workspace(map[string]any{})
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+ws+"/files", map[string]any{"name": "api.txt", "contents": "api"})
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+ws+"/files", map[string]any{"name": "apidir", "type": "folder"})
	c.upload(ws, "apidir", "up.bin", "", []byte("up"))
	sb := c.mounted(ws, "/workspace", false)

	if out := c.sh(sb, "stat -c '%u:%g %a %n' /workspace/api.txt /workspace/apidir /workspace/apidir/up.bin"); out !=
		"0:0 644 /workspace/api.txt\n0:0 755 /workspace/apidir\n0:0 644 /workspace/apidir/up.bin\n" {
		t.Errorf("owners and modes in the sandbox:\n%s", out)
	}
	c.sh(sb, "echo more >> /workspace/api.txt && chmod 600 /workspace/api.txt && echo x > /workspace/apidir/new && rm /workspace/apidir/up.bin")

	// Root-private things made in the sandbox.
	c.sh(sb, "umask 077 && mkdir /workspace/private && echo secret > /workspace/private/s.txt && chmod 000 /workspace/private/s.txt")
	if r := c.download(ws, "/private/s.txt"); r.Status != 200 || string(r.Body) != "secret\n" {
		t.Fatalf("API read of a root-private file: %d %q", r.Status, r.Body)
	}
	c.must(http.StatusOK, "PUT", "/v1/workspaces/"+ws+"/files/private/s.txt", map[string]any{"operation": "write", "contents": "changed"})
	c.must(http.StatusOK, "PUT", "/v1/workspaces/"+ws+"/files/private/s.txt", map[string]any{"operation": "rename", "target": "t.txt"})
	if out := c.sh(sb, "cat /workspace/private/t.txt; stat -c %a /workspace/private/t.txt"); out != "changed0\n" {
		t.Fatalf("after API write and rename: %q", out)
	}
	c.must(http.StatusOK, "DELETE", "/v1/workspaces/"+ws+"/files", map[string]any{"ids": []string{"/private"}})
	if out := c.sh(sb, "ls /workspace"); out != "api.txt\napidir\n" {
		t.Fatalf("after delete: %q", out)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestDeleteAllWorkspaces is what a reset of the emulator calls.
func TestDeleteAllWorkspaces(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	a := c.workspace(map[string]any{})
	c.workspace(map[string]any{})
	c.upload(a, "", "f.txt", "", []byte("x"))
	n, err := c.srv.Service().DeleteAllWorkspaces(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	if r := c.must(http.StatusOK, "GET", "/v1/workspaces", nil); len(r.Data()["workspaces"].([]any)) != 0 {
		t.Fatalf("left %s", r.Body)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.srv.DataDir, "workspaces")); len(ents) != 0 {
		t.Fatalf("left %d folders", len(ents))
	}
}
