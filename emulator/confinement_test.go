package emulator_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// The confinement attacks, each on its own: whatever a request names and
// whatever a sandbox (root inside) puts in the workspace, the file API
// never reads or writes outside the workspace's folder.

// attack is a workspace mounted in a running sandbox, beside a folder on
// this host that holds a secret the file API must never reach.
type attack struct {
	c       *client
	ws, sb  string
	base    string // /v1/workspaces/<ws>
	outside string // a host folder outside the workspace
	secret  string // the content of outside/secret
	passwd  string // sha256 of this host's /etc/passwd
	// hostPaths are places on this host where an escaped write would land,
	// with whether each existed before the attack.
	hostPaths map[string]bool
}

func newAttack(t *testing.T) *attack {
	t.Helper()
	c := newClient(t)
	a := &attack{c: c, outside: t.TempDir()}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	a.secret = "SECRET-" + hex.EncodeToString(b)
	must(t, os.WriteFile(filepath.Join(a.outside, "secret"), []byte(a.secret), 0o644))
	passwd, err := os.ReadFile("/etc/passwd")
	must(t, err)
	a.passwd = sha(passwd)
	a.hostPaths = map[string]bool{}
	for _, p := range []string{"/tmp/x", "/tmp/d", "/tmp/up.txt", "/tmp/inside.txt", "/x", "/up.txt", "/inside.txt", "/etc/x", "/etc/up.txt"} {
		_, err := os.Lstat(p)
		a.hostPaths[p] = err == nil
	}
	a.ws = c.workspace(map[string]any{})
	a.base = "/v1/workspaces/" + a.ws
	c.must(http.StatusOK, "POST", a.base+"/files", map[string]any{"name": "inside.txt", "contents": "inside"})
	c.must(http.StatusOK, "POST", a.base+"/files", map[string]any{"name": "sub", "type": "folder"})
	a.sb = c.mounted(a.ws, "/workspace", false)
	return a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// untouched checks the host outside the workspace.
func (a *attack) untouched(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(a.outside)
	if err != nil || len(ents) != 1 {
		t.Fatalf("the outside folder changed: %v %v", ents, err)
	}
	if b, _ := os.ReadFile(filepath.Join(a.outside, "secret")); string(b) != a.secret {
		t.Fatalf("the outside secret changed: %q", b)
	}
	if b, _ := os.ReadFile("/etc/passwd"); sha(b) != a.passwd {
		t.Fatal("/etc/passwd changed")
	}
	for p, existed := range a.hostPaths {
		if _, err := os.Lstat(p); (err == nil) != existed {
			t.Fatalf("%s was made or removed on the host", p)
		}
	}
}

// noLeak fails if a response carries anything from outside.
func (a *attack) noLeak(t *testing.T, what string, r response) {
	t.Helper()
	body := string(r.Body)
	if strings.Contains(body, a.secret) || strings.Contains(body, "root:x:0:0") {
		t.Fatalf("%s leaked: %d %q", what, r.Status, body)
	}
}

// everything sends every file operation that takes p as a file or a folder
// and expects each to be refused with want (and to leak nothing).
func (a *attack) everything(t *testing.T, p string, want int) {
	t.Helper()
	c := a.c
	ep := escapePath(p)
	q := url.QueryEscape
	ops := []struct {
		name, method, path string
		body               any
		ct                 string
	}{
		{"list", "GET", a.base + "/files/" + ep + "?showHidden=true", nil, ""},
		{"info of a file in it", "GET", a.base + "/info/" + ep + "/secret", nil, ""},
		{"download", "GET", a.base + "/direct?path=" + q(p+"/secret"), nil, ""},
		{"download attachment", "GET", a.base + "/direct?download=true&path=" + q(p+"/secret"), nil, ""},
		{"create file in it", "POST", a.base + "/files/" + ep, map[string]any{"name": "x", "contents": "pwned"}, ""},
		{"create folder in it", "POST", a.base + "/files/" + ep, map[string]any{"name": "d", "type": "folder"}, ""},
		{"write its file", "PUT", a.base + "/files/" + ep + "/secret", map[string]any{"operation": "write", "contents": "pwned"}, ""},
		{"rename its file", "PUT", a.base + "/files/" + ep + "/secret", map[string]any{"operation": "rename", "target": "moved"}, ""},
		{"move its file in", "PUT", a.base + "/files/" + ep + "/secret", map[string]any{"operation": "move", "target": "/sub"}, ""},
		{"copy its file in", "PUT", a.base + "/files/" + ep + "/secret", map[string]any{"operation": "copy", "target": "/sub"}, ""},
		{"move a file into it", "PUT", a.base + "/files/inside.txt", map[string]any{"operation": "move", "target": p}, ""},
		{"copy a file into it", "PUT", a.base + "/files/inside.txt", map[string]any{"operation": "copy", "target": p}, ""},
		{"batch copy into it", "PUT", a.base + "/files", map[string]any{"operation": "copy", "ids": []string{"/inside.txt"}, "target": p}, ""},
		{"batch move out of it", "PUT", a.base + "/files", map[string]any{"operation": "move", "ids": []string{p + "/secret"}, "target": "/sub"}, ""},
		{"delete in it", "DELETE", a.base + "/files", map[string]any{"ids": []string{p + "/secret"}}, ""},
	}
	for _, o := range ops {
		var r response
		if o.ct != "" {
			r = c.do(o.method, o.path, o.body, "Content-Type", o.ct)
		} else {
			r = c.do(o.method, o.path, o.body)
		}
		a.noLeak(t, o.name, r)
		if r.Status != want {
			t.Errorf("%s %q: status %d, want %d: %s", o.name, p, r.Status, want, r.Body)
		}
	}
	r := c.upload(a.ws, p, "up.txt", "", []byte("pwned"))
	if r.Status != want {
		t.Errorf("upload into %q: status %d, want %d: %s", p, r.Status, want, r.Body)
	}
	a.untouched(t)
	if out := a.c.sh(a.sb, "cat /workspace/inside.txt; ls /workspace/sub"); out != "inside" {
		t.Fatalf("a refused request changed the workspace: %q", out)
	}
}

// TestConfinementDotDot: ".." in API paths is refused by os.Root when it
// leads out, however it is spelled.
func TestConfinementDotDot(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	rel, err := filepath.Rel(a.c.folder(a.ws), a.outside)
	must(t, err)
	if !strings.HasPrefix(rel, "..") {
		t.Fatalf("the outside folder %s is not outside", rel)
	}
	a.everything(t, rel, http.StatusForbidden)
	a.everything(t, "sub/../"+rel, http.StatusForbidden)
	for _, p := range []string{"../../../../../../../../etc/passwd", "/../../../../../../../etc/passwd", "sub/../../../../../../../etc/passwd"} {
		r := a.c.download(a.ws, p)
		a.noLeak(t, p, r)
		if r.Status != http.StatusForbidden || r.ErrCode() != "forbidden" {
			t.Errorf("download %q: %d %s", p, r.Status, r.Body)
		}
	}
	// Escaped in the URL path: %2e%2e%2f decodes to ../ and is refused the same.
	r := a.c.do("GET", a.base+"/files/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc", nil)
	if r.Status != http.StatusForbidden {
		t.Errorf("escaped ..: %d %s", r.Status, r.Body)
	}
	// ".." that stays inside is fine.
	if r := a.c.download(a.ws, "sub/../inside.txt"); r.Status != 200 || string(r.Body) != "inside" {
		t.Errorf("inner ..: %d %q", r.Status, r.Body)
	}
}

// TestConfinementAbsolutePaths: an absolute path is a workspace path, never
// the host's.
func TestConfinementAbsolutePaths(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	for _, p := range []string{"/etc/passwd", a.outside + "/secret", "//etc/passwd"} {
		r := a.c.download(a.ws, p)
		a.noLeak(t, p, r)
		if r.Status != http.StatusNotFound {
			t.Errorf("download %q: %d %s", p, r.Status, r.Body)
		}
	}
	a.everything(t, a.outside, http.StatusNotFound)
	a.everything(t, "/etc", http.StatusNotFound)
}

// TestConfinementSymlinkToRoot: a symlink to / made in the sandbox.
func TestConfinementSymlinkToRoot(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	a.c.sh(a.sb, "ln -s / /workspace/rootlink")
	a.everything(t, "rootlink", http.StatusForbidden)
	a.everything(t, "rootlink/tmp", http.StatusForbidden)
	a.everything(t, "rootlink"+a.outside, http.StatusForbidden)
	r := a.c.download(a.ws, "/rootlink/etc/passwd")
	a.noLeak(t, "download", r)
	if r.Status != http.StatusForbidden {
		t.Fatalf("download through a link to /: %d", r.Status)
	}
	// The link itself lists as a link and can be removed: / stays.
	var link map[string]any
	for _, e := range a.c.listFiles(a.ws, "/", false) {
		if e["value"] == "rootlink" {
			link = e
		}
	}
	if link == nil || link["symlink"] != true || link["type"] != "file" {
		t.Fatalf("link entry %v", link)
	}
	a.c.must(http.StatusOK, "DELETE", a.base+"/files", map[string]any{"ids": []string{"/rootlink"}})
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	a.untouched(t)
}

// TestConfinementSymlinkToFile: a symlink to /etc/passwd and one to the
// host's secret. Download refuses them; copy, rename and move act on the
// link, never on what it points to; write replaces the link.
func TestConfinementSymlinkToFile(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	c := a.c
	c.sh(a.sb, "ln -s /etc/passwd /workspace/pw && ln -s "+a.outside+"/secret /workspace/sec && ln -s ../../../../../../../../../.."+a.outside+"/secret /workspace/relsec")
	for _, p := range []string{"/pw", "/sec", "/relsec"} {
		for _, dl := range []string{"false", "true"} {
			r := c.do("GET", a.base+"/direct?download="+dl+"&path="+url.QueryEscape(p), nil)
			a.noLeak(t, "download "+p, r)
			if r.Status != http.StatusForbidden || r.ErrCode() != "forbidden" {
				t.Errorf("download %s: %d %s", p, r.Status, r.Body)
			}
		}
	}
	// Copy copies the link, as a link.
	e := c.must(http.StatusOK, "PUT", a.base+"/files/pw", map[string]any{"operation": "copy", "target": "/sub"}).Data()
	if e["symlink"] != true || e["size"] != float64(0) {
		t.Fatalf("copy of a link: %v", e)
	}
	if out := c.sh(a.sb, "readlink /workspace/sub/pw"); out != "/etc/passwd\n" {
		t.Fatalf("copied link points at %q", out)
	}
	if r := c.download(a.ws, "/sub/pw"); r.Status != http.StatusForbidden {
		t.Fatalf("download of the copy: %d", r.Status)
	}
	// A folder holding links copies them as links.
	c.sh(a.sb, "mkdir /workspace/tree && ln -s "+a.outside+" /workspace/tree/out && ln -s /etc /workspace/tree/etc")
	c.must(http.StatusOK, "PUT", a.base+"/files/tree", map[string]any{"operation": "copy", "target": "/sub"})
	if out := c.sh(a.sb, "readlink /workspace/sub/tree/out; readlink /workspace/sub/tree/etc; ls /workspace/sub/tree | wc -l"); out != a.outside+"\n/etc\n2\n" {
		t.Fatalf("copied tree: %q", out)
	}
	// Rename and move move the link.
	c.must(http.StatusOK, "PUT", a.base+"/files/sec", map[string]any{"operation": "rename", "target": "sec2"})
	c.must(http.StatusOK, "PUT", a.base+"/files/sec2", map[string]any{"operation": "move", "target": "/sub"})
	if out := c.sh(a.sb, "readlink /workspace/sub/sec2"); out != a.outside+"/secret\n" {
		t.Fatalf("moved link points at %q", out)
	}
	// Write replaces the link with a file; the target is untouched.
	c.must(http.StatusOK, "PUT", a.base+"/files/pw", map[string]any{"operation": "write", "contents": "not passwd"})
	c.must(http.StatusOK, "PUT", a.base+"/files/sub/sec2", map[string]any{"operation": "write", "contents": "not secret"})
	if out := c.sh(a.sb, "cat /workspace/pw; test -L /workspace/pw || echo ' regular'"); out != "not passwd regular\n" {
		t.Fatalf("after write: %q", out)
	}
	// Upload over a link replaces the link too.
	c.sh(a.sb, "ln -s "+a.outside+"/secret /workspace/sub/up.txt")
	c.upload(a.ws, "sub", "up.txt", "", []byte("uploaded"))
	if out := c.sh(a.sb, "cat /workspace/sub/up.txt; test -L /workspace/sub/up.txt || echo ' regular'"); out != "uploaded regular\n" {
		t.Fatalf("after upload over a link: %q", out)
	}
	// Info on a link describes the link.
	info := c.must(http.StatusOK, "GET", a.base+"/info/sub/pw", nil).Data()
	if info["size"] != float64(0) {
		t.Fatalf("info of a link %v", info)
	}
	a.untouched(t)
}

// TestConfinementSymlinkedParent: a folder on the path is a symlink out
// (the outside folder on this host, named by its host path).
func TestConfinementSymlinkedParent(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	a.c.sh(a.sb, "ln -s "+a.outside+" /workspace/parent && mkdir -p /workspace/a/b && ln -s "+a.outside+" /workspace/a/b/c && ln -s ../../../../../../../../../.."+a.outside+" /workspace/relparent")
	a.everything(t, "parent", http.StatusForbidden)
	a.everything(t, "a/b/c", http.StatusForbidden)
	a.everything(t, "relparent", http.StatusForbidden)
	// A symlinked folder that stays inside works.
	a.c.sh(a.sb, "ln -s sub /workspace/alias && echo hi > /workspace/sub/hi.txt")
	if r := a.c.download(a.ws, "/alias/hi.txt"); r.Status != 200 || string(r.Body) != "hi\n" {
		t.Fatalf("inner symlinked folder: %d %q", r.Status, r.Body)
	}
	if got := names(a.c.listFiles(a.ws, "alias", false)); !equal(got, []string{"hi.txt"}) {
		t.Fatalf("list through an inner link: %v", got)
	}
}

// TestConfinementSwap: a folder the API has used is swapped for a symlink
// out between two calls, then swapped back and forth as fast as the
// sandbox can while the API reads and writes through it.
func TestConfinementSwap(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	c := a.c
	c.must(http.StatusOK, "POST", a.base+"/files", map[string]any{"name": "d", "type": "folder"})
	c.must(http.StatusOK, "POST", a.base+"/files/d", map[string]any{"name": "secret", "contents": "inside-d"})
	if r := c.download(a.ws, "/d/secret"); string(r.Body) != "inside-d" {
		t.Fatalf("before the swap: %q", r.Body)
	}
	// Between two calls.
	c.sh(a.sb, "mv /workspace/d /workspace/d.real && ln -s "+a.outside+" /workspace/d")
	a.everything(t, "d", http.StatusForbidden)
	c.sh(a.sb, "rm /workspace/d && mv /workspace/d.real /workspace/d")
	if r := c.download(a.ws, "/d/secret"); string(r.Body) != "inside-d" {
		t.Fatalf("after the swap back: %q", r.Body)
	}

	// During calls: the sandbox flips d for 4 seconds.
	c.sh(a.sb, `cd /workspace && (end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do
		mv d d.tmp; ln -s `+a.outside+` d; rm d; mv d.tmp d; done; : >/tmp/swaps-done) >/dev/null 2>&1 &`)
	var inside, refused, total atomic.Int64
	deadline := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(deadline) {
		r := c.download(a.ws, "/d/secret")
		a.noLeak(t, "download during swaps", r)
		total.Add(1)
		if r.Status == 200 {
			if string(r.Body) != "inside-d" {
				t.Fatalf("download during swaps gave %q", r.Body)
			}
			inside.Add(1)
		} else {
			refused.Add(1)
		}
		a.noLeak(t, "list during swaps", c.do("GET", a.base+"/files/d", nil))
		c.upload(a.ws, "d", "up.txt", "", []byte("pwned"))
		c.do("POST", a.base+"/files/d", map[string]any{"name": "x", "contents": "pwned"})
		c.do("PUT", a.base+"/files/d/secret", map[string]any{"operation": "write", "contents": "inside-d"})
	}
	t.Logf("%d rounds: %d downloads inside, %d refused or missing", total.Load(), inside.Load(), refused.Load())
	if inside.Load() == 0 {
		t.Fatal("no download succeeded: the race never saw the real folder")
	}
	// Let the loop end (it says so) before looking at the host.
	testwait.Until(t, 30*time.Second, func() bool { return c.sh(a.sb, "test -e /tmp/swaps-done && echo done || true") == "done\n" },
		"the swapping loop did not end")
	a.untouched(t)
}

// TestConfinementHardLinks: a sandbox can only hard-link what it sees, and
// the kernel refuses links across mounts, so a hard link to a file outside
// the workspace cannot be made; links inside it are files of the
// workspace, and an API write replaces the name rather than writing into
// the shared inode.
func TestConfinementHardLinks(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	c := a.c
	other := c.workspace(map[string]any{"name": "other"})
	c.must(http.StatusOK, "POST", "/v1/workspaces/"+other+"/files", map[string]any{"name": "o.txt", "contents": "other"})
	sb := c.create(map[string]any{"mounts": []map[string]any{
		{"workspaceId": a.ws, "path": "/workspace"}, {"workspaceId": other, "path": "/workspace/other"},
	}})["id"].(string)
	for _, cmd := range []string{
		"ln /etc/passwd /workspace/hl",            // the container's own files
		"ln /etc/hostname /workspace/hl",          // a file Docker bind-mounts in
		"ln /workspace/other/o.txt /workspace/hl", // another workspace
		"ln /bin/busybox /workspace/hl",
	} {
		res := c.exec(sb, map[string]any{"command": cmd})
		if res["exitCode"] == float64(0) || !strings.Contains(strings.ToLower(res["stderr"].(string)), "cross-device") {
			t.Errorf("%q: %v", cmd, res)
		}
	}
	if r := c.download(a.ws, "/hl"); r.Status != http.StatusNotFound {
		t.Fatalf("a refused link exists: %d", r.Status)
	}
	// Inside one workspace, a hard link is just a second name.
	c.sh(sb, "echo original > /workspace/a && ln /workspace/a /workspace/b && stat -c %h /workspace/a")
	if r := c.download(a.ws, "/b"); string(r.Body) != "original\n" {
		t.Fatalf("hard link reads %q", r.Body)
	}
	c.must(http.StatusOK, "PUT", a.base+"/files/b", map[string]any{"operation": "write", "contents": "new"})
	if out := c.sh(sb, "cat /workspace/a /workspace/b; stat -c %h /workspace/a"); out != "original\nnew1\n" {
		t.Fatalf("after the API wrote b: %q", out)
	}
	a.untouched(t)
}

// TestConfinementSpecialFiles: device nodes and FIFOs a sandbox makes are
// listed but never opened: downloads and copies refuse them at once.
func TestConfinementSpecialFiles(t *testing.T) {
	t.Parallel()
	a := newAttack(t)
	c := a.c
	c.sh(a.sb, "mkfifo /workspace/fifo && mkdir /workspace/t && mkfifo /workspace/t/f && ln -s fifo /workspace/fifolink")
	// Sandboxes cannot make device nodes (no CAP_MKNOD), but one may be
	// there all the same (made on the host, or by an older rtemu's
	// sandbox): the test makes them on the host.
	dir := filepath.Join(c.srv.DataDir, "workspaces", a.ws)
	for _, d := range []struct {
		name       string
		char       bool
		major, min uint32
	}{{"null", true, 1, 3}, {"disk", false, 8, 0}} {
		if err := makeDevice(filepath.Join(dir, d.name), d.char, d.major, d.min); err != nil {
			t.Skipf("cannot make a device node on the host (not root?): %v", err)
		}
	}
	if res := c.exec(a.sb, map[string]any{"command": "mknod /workspace/null2 c 1 3"}); res["exitCode"].(float64) == 0 {
		t.Fatal("a sandbox made a device node")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range []string{"/fifo", "/null", "/disk", "/fifolink"} {
			r := c.download(a.ws, p)
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "not a regular file") {
				t.Errorf("download %s: %d %s", p, r.Status, r.Body)
			}
		}
		r := c.do("PUT", a.base+"/files/t", map[string]any{"operation": "copy", "target": "/sub"})
		if r.Status != http.StatusBadRequest {
			t.Errorf("copy of a tree with a FIFO: %d %s", r.Status, r.Body)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a request on a FIFO or device hung")
	}
	if got := names(c.listFiles(a.ws, "/sub", true)); len(got) != 0 {
		t.Fatalf("a refused copy left %v", got)
	}
	got := names(c.listFiles(a.ws, "/", false))
	if !equal(got, []string{"sub", "t", "disk", "fifo", "fifolink", "inside.txt", "null"}) {
		t.Fatalf("listing %v", got)
	}
	// Writing over one replaces it with a file, without opening it.
	c.must(http.StatusOK, "PUT", a.base+"/files/fifo", map[string]any{"operation": "write", "contents": "now a file"})
	if r := c.download(a.ws, "/fifo"); string(r.Body) != "now a file" {
		t.Fatalf("after write: %q", r.Body)
	}
}
