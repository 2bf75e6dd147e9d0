package sshgw_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
)

func randomFile(t *testing.T, dir, name string, size int) (string, string) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, hex.EncodeToString(sum[:])
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestSFTPAndSCP: OpenSSH sftp and scp (which speaks SFTP) upload and
// download files with equal checksums, to a sandbox whose image has no
// sftp-server: the gateway serves the subsystem itself. Issue 3 point 7.
func TestSFTPAndSCP(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(map[string]any{"name": "files"})
	if out := h.sh(id, "ls /usr/lib/openssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server 2>/dev/null; which sftp-server scp || true"); out != "" {
		t.Fatalf("the test image has an sftp-server or scp: %q", out)
	}
	local := t.TempDir()
	big, bigSum := randomFile(t, local, "big.bin", 8<<20+123)
	small, smallSum := randomFile(t, local, "small name.txt", 1000)
	inside := func(cmd string) string { return strings.TrimSpace(h.sh(id, cmd)) }
	sumInside := func(p string) string { return inside("sha256sum '" + p + "' | cut -d' ' -f1") }

	t.Run("scp", func(t *testing.T) {
		r := openssh(t, h.ssh("scp", append(withKey(key), big, target(id, h)+":/tmp/scp-up.bin")...), nil)
		if r.code != 0 {
			t.Fatalf("scp upload: %+v", r)
		}
		if got := sumInside("/tmp/scp-up.bin"); got != bigSum {
			t.Fatalf("uploaded checksum %s, want %s", got, bigSum)
		}
		down := filepath.Join(local, "scp-down.bin")
		r = openssh(t, h.ssh("scp", append(withKey(key), target("files", h)+":/tmp/scp-up.bin", down)...), nil)
		if r.code != 0 {
			t.Fatalf("scp download: %+v", r)
		}
		if got := fileSum(t, down); got != bigSum {
			t.Fatalf("downloaded checksum %s, want %s", got, bigSum)
		}
		// -p keeps the modification time, which scp sets before it closes
		// the file; -r copies a tree.
		if err := os.Chtimes(small, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		r = openssh(t, h.ssh("scp", append(withKey(key), "-p", small, target(id, h)+":/tmp/")...), nil)
		if r.code != 0 {
			t.Fatalf("scp -p: %+v", r)
		}
		if got := inside("stat -c %Y '/tmp/small name.txt'"); got != "1700000000" {
			t.Errorf("scp -p mtime %s", got)
		}
		if got := sumInside("/tmp/small name.txt"); got != smallSum {
			t.Errorf("scp -p checksum %s, want %s", got, smallSum)
		}
		tree := filepath.Join(local, "tree")
		os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
		os.WriteFile(filepath.Join(tree, "sub", "f"), []byte("leaf\n"), 0o600)
		r = openssh(t, h.ssh("scp", append(withKey(key), "-r", tree, target(id, h)+":/tmp/")...), nil)
		if r.code != 0 || inside("cat /tmp/tree/sub/f; stat -c %a /tmp/tree/sub/f") != "leaf\n600" {
			t.Fatalf("scp -r: %+v, inside %q", r, inside("ls -lR /tmp/tree"))
		}
	})

	t.Run("sftp", func(t *testing.T) {
		got := filepath.Join(local, "sftp-down.bin")
		batch := strings.Join([]string{
			"mkdir /tmp/work",
			"cd /tmp/work",
			"put " + big + " up.bin",
			`put "` + small + `"`,
			"ls -l",
			"rename up.bin moved.bin",
			"get moved.bin " + got,
			"chmod 600 moved.bin",
			"symlink moved.bin link",
			"mkdir gone",
			"rmdir gone",
			"rm \"small name.txt\"",
			"pwd",
		}, "\n") + "\n"
		r := openssh(t, h.ssh("sftp", append(withKey(key), "-b", "-", target(id, h))...), strings.NewReader(batch))
		if r.code != 0 {
			t.Fatalf("sftp batch: %+v", r)
		}
		if !strings.Contains(r.stdout, "up.bin") || !strings.Contains(r.stdout, "Remote working directory: /tmp/work") {
			t.Errorf("sftp output %q", r.stdout)
		}
		if s := fileSum(t, got); s != bigSum {
			t.Fatalf("sftp get checksum %s, want %s", s, bigSum)
		}
		if s := sumInside("/tmp/work/moved.bin"); s != bigSum {
			t.Fatalf("sftp put checksum inside %s, want %s", s, bigSum)
		}
		if out := inside("cd /tmp/work && ls -A && stat -c %a moved.bin && readlink link"); out != "link\nmoved.bin\n600\nmoved.bin" {
			t.Errorf("inside after sftp: %q", out)
		}
		// Errors come back as errors: sftp -b stops at the first.
		for _, bad := range []string{"get /no/such/file " + filepath.Join(local, "x"), "rmdir /tmp/work", "mkdir /tmp/work", "cd /no/such/dir"} {
			r := openssh(t, h.ssh("sftp", append(withKey(key), "-b", "-", target(id, h))...), strings.NewReader(bad+"\n"))
			if r.code == 0 {
				t.Errorf("sftp %q succeeded: %+v", bad, r)
			}
		}
	})

	t.Run("pkg/sftp client", func(t *testing.T) {
		c := h.mustDial(id, gossh.PublicKeys(key.signer))
		fc, err := sftp.NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		wd, err := fc.Getwd()
		if err != nil || wd != "/root" {
			t.Errorf("working dir %q, %v", wd, err)
		}
		f, err := fc.Create("/tmp/client.txt")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, strings.NewReader(strings.Repeat("abc", 100000))); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := fc.Stat("/tmp/client.txt")
		if err != nil || st.Size() != 300000 || st.IsDir() {
			t.Fatalf("stat: %v %v", st, err)
		}
		r, err := fc.Open("/tmp/client.txt")
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := r.WriteTo(&b); err != nil || b.String() != strings.Repeat("abc", 100000) {
			t.Fatalf("read back %d bytes, %v", b.Len(), err)
		}
		r.Close()
		if _, err := fc.Stat("/tmp/nope"); !os.IsNotExist(err) {
			t.Errorf("stat of a missing file: %v, want not-exist", err)
		}
		entries, err := fc.ReadDir("/tmp")
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, e := range entries {
			names[e.Name()] = true
		}
		if !names["client.txt"] || !names["work"] {
			t.Errorf("ReadDir /tmp: %v", names)
		}
	})
}

var mtime = time.Unix(1700000000, 0)
