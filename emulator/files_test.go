package emulator_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFilesAPI walks the file API: list (root, sub-folders, hidden),
// create, upload, rename, move, copy, write, batch copy/move, batch delete,
// download inline and as an attachment, info.
func TestFilesAPI(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ws := c.workspace(map[string]any{})
	base := "/v1/workspaces/" + ws

	if got := c.listFiles(ws, "", false); len(got) != 0 {
		t.Fatalf("new workspace lists %v", got)
	}
	// Create: folders (both spellings), files with and without contents.
	e := c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": "src", "type": "folder"}).Data()
	if e["id"] != "/src" || e["type"] != "folder" || e["lazy"] != true || e["count"] != float64(0) {
		t.Fatalf("folder entry %v", e)
	}
	c.must(http.StatusOK, "POST", base+"/files/src", map[string]any{"name": "components", "type": "directory"})
	e = c.must(http.StatusOK, "POST", base+"/files/src", map[string]any{"name": "index.ts", "type": "file", "contents": "export {}\n"}).Data()
	if e["id"] != "/src/index.ts" || e["type"] != "file" || e["size"] != float64(10) || e["value"] != "index.ts" {
		t.Fatalf("file entry %v", e)
	}
	if !msTimeRE.MatchString(e["date"].(string)) {
		t.Errorf("date %v", e["date"])
	}
	c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": "empty"})
	c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": ".hidden", "contents": "h"})
	if r := c.do("POST", base+"/files", map[string]any{"name": "empty"}); r.Status != 409 {
		t.Errorf("create over an existing file: %d", r.Status)
	}

	// List: folders first, hidden only when asked, folder counts.
	root := c.listFiles(ws, "/", false)
	if got := names(root); !equal(got, []string{"src", "empty"}) {
		t.Fatalf("root %v", got)
	}
	if root[0]["count"] != float64(2) || root[0]["size"] != nil || root[1]["size"] != float64(0) {
		t.Errorf("root entries %v", root)
	}
	if got := names(c.listFiles(ws, "/", true)); !equal(got, []string{"src", ".hidden", "empty"}) {
		t.Fatalf("root with hidden %v", got)
	}
	if got := names(c.listFiles(ws, "src", false)); !equal(got, []string{"components", "index.ts"}) {
		t.Fatalf("src %v", got)
	}
	if got := c.listFiles(ws, "src/", false); len(got) != 2 || got[1]["id"] != "/src/index.ts" {
		t.Fatalf("src/ %v", got)
	}

	// Upload into a folder by path, by query id, and with a name override.
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	e = c.upload(ws, "src/components", "button.tsx", "", big).Data()
	if e["id"] != "/src/components/button.tsx" || e["size"] != float64(len(big)) {
		t.Fatalf("upload %v", e)
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("file", "q.txt")
	_, _ = fw.Write([]byte("by query"))
	_ = mw.Close()
	r := c.do("POST", base+"/upload?id=/src", b.Bytes(), "Content-Type", mw.FormDataContentType())
	if r.Status != 200 || r.Data()["id"] != "/src/q.txt" {
		t.Fatalf("upload by query id: %d %s", r.Status, r.Body)
	}
	if e := c.upload(ws, "", "ignored.txt", "renamed.txt", []byte("r")).Data(); e["id"] != "/renamed.txt" {
		t.Fatalf("name override %v", e)
	}
	// An upload over an existing file replaces it.
	c.upload(ws, "", "renamed.txt", "", []byte("replaced"))
	if r := c.download(ws, "/renamed.txt"); string(r.Body) != "replaced" {
		t.Fatalf("replaced upload reads %q", r.Body)
	}

	// Download inline and as an attachment.
	r = c.download(ws, "/src/components/button.tsx")
	if r.Status != 200 || !bytes.Equal(r.Body, big) || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "inline") {
		t.Fatalf("inline download %d %v", r.Status, r.Header)
	}
	r = c.do("GET", base+"/direct?path=/src/index.ts&download=true", nil)
	if r.Header.Get("Content-Disposition") != `attachment; filename=index.ts` || string(r.Body) != "export {}\n" {
		t.Fatalf("attachment %v %q", r.Header, r.Body)
	}
	r = c.do("GET", base+"/direct?path=/src/components/button.tsx", nil, "Range", "bytes=10-19")
	if r.Status != http.StatusPartialContent || string(r.Body) != "0123456789" {
		t.Fatalf("range %d %q", r.Status, r.Body)
	}

	// Rename, move, copy, write.
	e = c.must(http.StatusOK, "PUT", base+"/files/src/q.txt", map[string]any{"operation": "rename", "target": "query.txt"}).Data()
	if e["id"] != "/src/query.txt" {
		t.Fatalf("rename %v", e)
	}
	c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": "dst", "type": "folder"})
	e = c.must(http.StatusOK, "PUT", base+"/files/src/query.txt", map[string]any{"operation": "move", "target": "/dst"}).Data()
	if e["id"] != "/dst/query.txt" {
		t.Fatalf("move %v", e)
	}
	e = c.must(http.StatusOK, "PUT", base+"/files/src", map[string]any{"operation": "copy", "target": "/dst"}).Data()
	if e["id"] != "/dst/src" || e["type"] != "folder" {
		t.Fatalf("copy %v", e)
	}
	if r := c.download(ws, "/dst/src/components/button.tsx"); !bytes.Equal(r.Body, big) {
		t.Fatal("copied tree differs")
	}
	e = c.must(http.StatusOK, "PUT", base+"/files/src/index.ts", map[string]any{"operation": "write", "contents": "export const x = 1\n"}).Data()
	if e["size"] != float64(19) {
		t.Fatalf("write %v", e)
	}
	if r := c.download(ws, "/dst/src/index.ts"); string(r.Body) != "export {}\n" {
		t.Fatalf("the copy changed with the original: %q", r.Body)
	}
	if r := c.do("PUT", base+"/files/empty", map[string]any{"operation": "rename", "target": "renamed.txt"}); r.Status != 409 {
		t.Errorf("rename onto an existing name: %d", r.Status)
	}

	// Batch copy and move, by ids.
	c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": "batch", "type": "folder"})
	out := c.must(http.StatusOK, "PUT", base+"/files", map[string]any{"operation": "copy", "ids": []string{"/empty", "/renamed.txt"}, "target": "/batch"})
	if got := out.JSON["data"].([]any); len(got) != 2 || got[1].(map[string]any)["id"] != "/batch/renamed.txt" {
		t.Fatalf("batch copy %s", out.Body)
	}
	c.must(http.StatusOK, "PUT", base+"/files/dst", map[string]any{"operation": "move", "ids": []string{"/empty", "/renamed.txt"}})
	if got := names(c.listFiles(ws, "/dst", false)); !equal(got, []string{"src", "empty", "query.txt", "renamed.txt"}) {
		t.Fatalf("after batch move into /dst: %v", got)
	}

	// Info: a file, a folder, the storage line.
	info := c.must(http.StatusOK, "GET", base+"/info/dst", nil).Data()
	wantBytes := float64(len(big)*1 + 10 + len("replaced")*1 + len("by query"))
	if info["type"] != "folder" || info["size"] != wantBytes || info["count"] != float64(5) || info["folders"] != float64(2) {
		t.Fatalf("info dst %v (want size %v)", info, wantBytes)
	}
	info = c.must(http.StatusOK, "GET", base+"/info/src/index.ts", nil).Data()
	if info["type"] != "file" || info["size"] != float64(19) || info["count"] != float64(1) {
		t.Fatalf("info file %v", info)
	}
	st := c.must(http.StatusOK, "GET", base+"/info", nil).Data()
	if st["unlimited"] != true || st["usedBytes"].(float64) < wantBytes {
		t.Fatalf("storage %v", st)
	}

	// Batch delete.
	d := c.must(http.StatusOK, "DELETE", base+"/files", map[string]any{"ids": []string{"/dst", "/batch/empty", ".hidden"}}).Data()
	if len(d["deleted"].([]any)) != 3 {
		t.Fatalf("delete %v", d)
	}
	if got := names(c.listFiles(ws, "/", true)); !equal(got, []string{"batch", "src"}) {
		t.Fatalf("after delete: %v", got)
	}
}

var msTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// TestFileNamesRoundTrip: spaces, unicode and newlines survive create,
// upload, list, download, rename and the sandbox.
func TestFileNamesRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ws := c.workspace(map[string]any{})
	base := "/v1/workspaces/" + ws
	odd := []string{"with space.txt", "ünïcødé ✓ 文件.md", "new\nline.txt", "100% #1?&=.txt", "tab\tand 'quotes\""}
	c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": "dir with space ✓", "type": "folder"})
	for i, n := range odd {
		e := c.must(http.StatusOK, "POST", base+"/files/"+escapePath("dir with space ✓"), map[string]any{"name": n, "contents": n}).Data()
		if e["value"] != n || e["id"] != "/dir with space ✓/"+n {
			t.Fatalf("create %q: %v", n, e)
		}
		up := fmt.Sprintf("up %d %s", i, n)
		if e := c.upload(ws, "dir with space ✓", "x", up, []byte(up)).Data(); e["value"] != up {
			t.Fatalf("upload %q: %v", up, e)
		}
		if r := c.download(ws, "/dir with space ✓/"+n); string(r.Body) != n {
			t.Fatalf("download %q: %d %q", n, r.Status, r.Body)
		}
		if r := c.download(ws, "/dir with space ✓/"+up); string(r.Body) != up {
			t.Fatalf("download %q: %d %q", up, r.Status, r.Body)
		}
	}
	got := names(c.listFiles(ws, "dir with space ✓", false))
	if len(got) != 2*len(odd) {
		t.Fatalf("listing %q", got)
	}
	r := c.do("GET", base+"/direct?download=true&path="+url.QueryEscape("/dir with space ✓/new\nline.txt"), nil)
	if r.Header.Get("Content-Disposition") != "attachment; filename*=utf-8''new%0Aline.txt" {
		t.Errorf("disposition %q", r.Header.Get("Content-Disposition"))
	}
	e := c.must(http.StatusOK, "PUT", base+"/files/"+escapePath("dir with space ✓/new\nline.txt"),
		map[string]any{"operation": "rename", "target": "still\nnew ✓"}).Data()
	if e["id"] != "/dir with space ✓/still\nnew ✓" {
		t.Fatalf("rename %v", e)
	}
	// The sandbox sees the same names, byte for byte.
	sb := c.mounted(ws, "/workspace", false)
	out := c.sh(sb, `cd "/workspace/dir with space ✓" && for f in *; do printf '%s\0' "$f"; done`)
	inBox := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	want := names(c.listFiles(ws, "dir with space ✓", false))
	if !equal(sorted(inBox), sorted(want)) {
		t.Fatalf("sandbox names %q, API names %q", inBox, want)
	}
	// And names made in the sandbox come back through the API.
	c.sh(sb, `printf made > "/workspace/made
in sandbox ✓.txt"`)
	if r := c.download(ws, "/made\nin sandbox ✓.txt"); string(r.Body) != "made" {
		t.Fatalf("sandbox-made name: %d %q", r.Status, r.Body)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// streamUpload uploads size generated bytes without holding them: the
// multipart body is written into a pipe as the request reads it. It
// returns the response and the content's sha256.
func (c *client) streamUpload(ws, name string, size int64, knownLength bool) (response, string) {
	c.t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	h := sha256.New()
	go func() {
		fw, err := mw.CreateFormFile("file", name)
		if err == nil {
			chunk := make([]byte, 64<<10)
			for i := range chunk {
				chunk[i] = byte(i * 7)
			}
			for left := size; left > 0 && err == nil; {
				n := min(int64(len(chunk)), left)
				chunk[0]++
				h.Write(chunk[:n])
				_, err = fw.Write(chunk[:n])
				left -= n
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest("POST", c.srv.URL+"/v1/workspaces/"+ws+"/upload", pr)
	if err != nil {
		c.t.Fatal(err)
	}
	if knownLength {
		// The framing is fixed for a fixed name: measure it once.
		var fb bytes.Buffer
		fmw := multipart.NewWriter(&fb)
		_ = fmw.SetBoundary(mw.Boundary())
		_, _ = fmw.CreateFormFile("file", name)
		_ = fmw.Close()
		req.ContentLength = int64(fb.Len()) + size
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-API-Key", c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{Status: -1, Body: []byte(err.Error())}, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	_ = jsonUnmarshal(raw, &r.JSON)
	return r, hex.EncodeToString(h.Sum(nil))
}

// TestUploadLimit: a 100 MiB upload is streamed to disk (the heap does not
// grow by anything like its size) and reaches the sandbox intact; one byte
// more is 413 and leaves nothing behind, whether the length is announced or
// not. Not parallel: it measures this process's heap.
func TestUploadLimit(t *testing.T) {
	c := newClient(t)
	ws := c.workspace(map[string]any{})
	const max = 100 << 20

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	start := time.Now()
	r, sum := c.streamUpload(ws, "big.bin", max, false)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if r.Status != 200 || r.Data()["size"] != float64(max) {
		t.Fatalf("100 MiB upload: %d %s", r.Status, r.Body)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("100 MiB upload in %v; heap in use grew by at most %d KiB", elapsed, growth>>10)
	if growth > 32<<20 {
		t.Fatalf("the heap grew by %d MiB during a 100 MiB upload: not streamed", growth>>20)
	}
	sb := c.mounted(ws, "/workspace", true)
	if out := c.sh(sb, "sha256sum /workspace/big.bin"); !strings.HasPrefix(out, sum) {
		t.Fatalf("sandbox sha256 %q, want %s", out, sum)
	}

	before := tree(t, c.folder(ws))
	for _, known := range []bool{true, false} {
		r, _ := c.streamUpload(ws, "toobig.bin", max+1, known)
		if r.Status != http.StatusRequestEntityTooLarge || r.ErrCode() != "payload_too_large" {
			t.Fatalf("100 MiB + 1 (length known: %v): %d %s", known, r.Status, r.Body)
		}
		if got := tree(t, c.folder(ws)); !equal(got, before) {
			t.Fatalf("a refused upload left %v", got)
		}
	}
}

// rawRequest sends bytes over a TCP connection and returns the status
// line's code: for requests net/http's client will not send.
func rawRequest(t *testing.T, srvURL, req string) int {
	t.Helper()
	u, _ := url.Parse(srvURL)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFilesBadInput: each bad request is a clear 4xx in the envelope and
// changes nothing.
func TestFilesBadInput(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	ws := c.workspace(map[string]any{})
	base := "/v1/workspaces/" + ws
	c.must(http.StatusOK, "POST", base+"/files", map[string]any{"name": "dir", "type": "folder"})
	c.must(http.StatusOK, "POST", base+"/files/dir", map[string]any{"name": "f.txt", "contents": "f"})
	before := tree(t, c.folder(ws))
	unknown := "/v1/workspaces/6f1c0c52-6a43-4c3e-9e0e-9d5e1b2f1a00"

	multi := func(fields map[string]string, withFile bool) ([]byte, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range fields {
			_ = mw.WriteField(k, v)
		}
		if withFile {
			fw, _ := mw.CreateFormFile("file", "")
			_, _ = fw.Write([]byte("x"))
		}
		_ = mw.Close()
		return b.Bytes(), mw.FormDataContentType()
	}
	noFile, noFileCT := multi(map[string]string{"name": "x.txt"}, false)
	noName, noNameCT := multi(nil, true)
	badName, badNameCT := multi(map[string]string{"name": "../x"}, true)
	many := make([]string, 251)
	for i := range many {
		many[i] = fmt.Sprintf("/f%d", i)
	}

	tests := []struct {
		name, method, path string
		body               any
		ct                 string
		status             int
		code, field        string
	}{
		{"unknown workspace: list", "GET", unknown + "/files", nil, "", 404, "not_found", ""},
		{"unknown workspace: create", "POST", unknown + "/files", `{"name":"x"}`, "", 404, "not_found", ""},
		{"unknown workspace: upload", "POST", unknown + "/upload", noName, noNameCT, 404, "not_found", ""},
		{"unknown workspace: download", "GET", unknown + "/direct?path=/x", nil, "", 404, "not_found", ""},
		{"unknown workspace: delete files", "DELETE", unknown + "/files", `{"ids":["/x"]}`, "", 404, "not_found", ""},
		{"unknown workspace: put", "PUT", unknown + "/files/x", `{"operation":"write","contents":""}`, "", 404, "not_found", ""},
		{"unknown workspace: info", "GET", unknown + "/info/x", nil, "", 404, "not_found", ""},
		{"slug-like unknown", "GET", "/v1/workspaces/nope/files", nil, "", 404, "not_found", ""},
		{"empty name", "POST", base + "/files", `{"name":""}`, "", 400, "bad_request", "name"},
		{"dot name", "POST", base + "/files", `{"name":"."}`, "", 400, "bad_request", "name"},
		{"dotdot name", "POST", base + "/files", `{"name":".."}`, "", 400, "bad_request", "name"},
		{"slash in name", "POST", base + "/files", `{"name":"dir/g.txt"}`, "", 400, "bad_request", "name"},
		{"NUL in name", "POST", base + "/files", `{"name":"a\u0000b"}`, "", 400, "bad_request", "name"},
		{"long name", "POST", base + "/files", map[string]any{"name": strings.Repeat("n", 256)}, "", 400, "bad_request", "name"},
		{"bad type", "POST", base + "/files", `{"name":"x","type":"symlink"}`, "", 400, "bad_request", "type"},
		{"folder with contents", "POST", base + "/files", `{"name":"x","type":"folder","contents":"y"}`, "", 400, "bad_request", "contents"},
		{"name not a string", "POST", base + "/files", `{"name":1}`, "", 400, "bad_request", "name"},
		{"create exists", "POST", base + "/files", `{"name":"dir"}`, "", 409, "conflict", ""},
		{"create in a missing folder", "POST", base + "/files/nope", `{"name":"x"}`, "", 404, "not_found", ""},
		{"create in a file", "POST", base + "/files/dir/f.txt", `{"name":"x"}`, "", 400, "bad_request", "path"},
		{"list a file", "GET", base + "/files/dir/f.txt", nil, "", 400, "bad_request", "path"},
		{"list missing", "GET", base + "/files/nope", nil, "", 404, "not_found", ""},
		{"showHidden not bool", "GET", base + "/files?showHidden=maybe", nil, "", 400, "bad_request", "showHidden"},
		{"upload: missing file field", "POST", base + "/upload", noFile, noFileCT, 400, "bad_request", "file"},
		{"upload: no file name", "POST", base + "/upload", noName, noNameCT, 400, "bad_request", "name"},
		{"upload: bad name", "POST", base + "/upload", badName, badNameCT, 400, "bad_request", "name"},
		{"upload: not multipart", "POST", base + "/upload", `{"file":"x"}`, "", 415, "unsupported_media_type", ""},
		{"upload: broken multipart", "POST", base + "/upload", "--zzz\r\nnot a part", "multipart/form-data; boundary=zzz", 400, "bad_request", "body"},
		{"upload: into a file", "POST", base + "/upload/dir/f.txt", noName, noNameCT, 400, "bad_request", "path"},
		{"upload: into missing folder", "POST", base + "/upload/nope", noName, noNameCT, 404, "not_found", ""},
		{"delete: too many ids", "DELETE", base + "/files", map[string]any{"ids": many}, "", 400, "bad_request", "ids"},
		{"delete: no ids", "DELETE", base + "/files", `{"ids":[]}`, "", 400, "bad_request", "ids"},
		{"delete: ids not a list", "DELETE", base + "/files", `{"ids":"/dir"}`, "", 400, "bad_request", "ids"},
		{"delete: one missing", "DELETE", base + "/files", `{"ids":["/dir/f.txt","/nope"]}`, "", 404, "not_found", ""},
		{"delete: the root", "DELETE", base + "/files", `{"ids":["/"]}`, "", 400, "bad_request", "ids"},
		{"batch: too many ids", "PUT", base + "/files", map[string]any{"operation": "copy", "ids": many, "target": "/dir"}, "", 400, "bad_request", "ids"},
		{"batch: bad operation", "PUT", base + "/files", `{"operation":"rename","ids":["/dir"],"target":"/"}`, "", 400, "bad_request", "operation"},
		{"batch: no target", "PUT", base + "/files", `{"operation":"copy","ids":["/dir"]}`, "", 400, "bad_request", "target"},
		{"batch: one missing", "PUT", base + "/files", `{"operation":"move","ids":["/dir/f.txt","/nope"],"target":"/"}`, "", 404, "not_found", ""},
		{"put: no operation", "PUT", base + "/files/dir/f.txt", `{}`, "", 400, "bad_request", "operation"},
		{"put: unknown operation", "PUT", base + "/files/dir/f.txt", `{"operation":"chmod"}`, "", 400, "bad_request", "operation"},
		{"put: rename to a path", "PUT", base + "/files/dir/f.txt", `{"operation":"rename","target":"../g.txt"}`, "", 400, "bad_request", "target"},
		{"put: write without contents", "PUT", base + "/files/dir/f.txt", `{"operation":"write"}`, "", 400, "bad_request", "contents"},
		{"put: write a folder", "PUT", base + "/files/dir", `{"operation":"write","contents":"x"}`, "", 400, "bad_request", "path"},
		{"put: move without target", "PUT", base + "/files/dir/f.txt", `{"operation":"move"}`, "", 400, "bad_request", "target"},
		{"put: move into a file", "PUT", base + "/files/dir", `{"operation":"move","target":"/dir/f.txt"}`, "", 400, "bad_request", "path"},
		{"put: move into itself", "PUT", base + "/files/dir", `{"operation":"move","target":"/dir"}`, "", 400, "bad_request", "path"},
		{"put: copy into itself", "PUT", base + "/files/dir", `{"operation":"copy","target":"/dir"}`, "", 400, "bad_request", "path"},
		{"put: rename the root", "PUT", base + "/files/", `{"operation":"rename","target":"x"}`, "", 400, "bad_request", "path"},
		{"put: missing entry", "PUT", base + "/files/nope", `{"operation":"rename","target":"x"}`, "", 404, "not_found", ""},
		{"download: no path", "GET", base + "/direct", nil, "", 400, "bad_request", "path"},
		{"download: a folder", "GET", base + "/direct?path=/dir", nil, "", 400, "bad_request", "path"},
		{"download: missing", "GET", base + "/direct?path=/nope", nil, "", 404, "not_found", ""},
		{"download: download not bool", "GET", base + "/direct?path=/dir/f.txt&download=2", nil, "", 400, "bad_request", "download"},
		{"info: missing", "GET", base + "/info/nope", nil, "", 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.ct != "" {
				r = c.do(tt.method, tt.path, tt.body, "Content-Type", tt.ct)
			} else {
				r = c.do(tt.method, tt.path, tt.body)
			}
			if r.Status != tt.status || r.ErrCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q: %s", r.Status, r.ErrCode(), tt.status, tt.code, r.Body)
			}
			if msg, _ := r.JSON["error"].(map[string]any)["message"].(string); msg == "" {
				t.Fatalf("no message: %s", r.Body)
			}
			if tt.field != "" {
				details, _ := r.JSON["error"].(map[string]any)["details"].([]any)
				if len(details) == 0 || details[0].(map[string]any)["field"] != tt.field {
					t.Fatalf("details %v, want field %s", details, tt.field)
				}
			}
		})
	}
	// A body announced as larger than 100 MiB is refused before a byte is read.
	code := rawRequest(t, c.srv.URL, "POST "+base+"/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: "+c.key+
		"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 209715200\r\n\r\n")
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("announced 200 MiB upload: %d", code)
	}
	// So is a JSON body over 1 MiB on the file routes.
	if r := c.do("POST", base+"/files", map[string]any{"name": "x", "contents": strings.Repeat("c", 1<<20)}); r.Status != 413 {
		t.Errorf("2 MiB of JSON: %d", r.Status)
	}
	if got := tree(t, c.folder(ws)); !equal(got, before) {
		t.Fatalf("bad requests changed the workspace:\n%v\nwas\n%v", got, before)
	}
}
