package sshgw_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
)

// TestSFTPStatVFS: the gateway answers statvfs@openssh.com from the
// container's file system, so df works in OpenSSH's sftp and StatVFS in
// pkg/sftp, with the numbers the sandbox itself sees.
func TestSFTPStatVFS(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(nil)

	t.Run("pkg/sftp client", func(t *testing.T) {
		fc, err := sftp.NewClient(h.mustDial(id, gossh.PublicKeys(key.signer)))
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		st, err := fc.StatVFS("/workspace")
		if err != nil {
			t.Fatalf("statvfs: %v", err)
		}
		inside := strings.Fields(h.sh(id, "stat -f -c '%S %b %c %l' /workspace"))
		want := make([]uint64, len(inside))
		for i, s := range inside {
			want[i], _ = strconv.ParseUint(s, 10, 64)
		}
		if len(want) != 4 || st.Frsize != want[0] || st.Blocks != want[1] || st.Files != want[2] || st.Namemax != want[3] {
			t.Errorf("statvfs %+v; the sandbox says %v", st, inside)
		}
		if st.Blocks == 0 || st.Bavail > st.Blocks || st.Bfree > st.Blocks {
			t.Errorf("statvfs numbers do not add up: %+v", st)
		}
		if _, err := fc.StatVFS("/no/such/dir"); !os.IsNotExist(err) {
			t.Errorf("statvfs of a missing path: %v, want not-exist", err)
		}
	})

	t.Run("df in OpenSSH sftp", func(t *testing.T) {
		r := openssh(t, h.ssh("sftp", append(withKey(key), "-b", "-", target(id, h))...), strings.NewReader("df -h /\ndf -i /workspace\n"))
		if r.code != 0 {
			t.Fatalf("sftp df: %+v", r)
		}
		if !strings.Contains(r.stdout, "Size") || !strings.Contains(r.stdout, "Inodes") {
			t.Errorf("sftp df output %q", r.stdout)
		}
	})
}
