package sshgw

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pkg/sftp"
)

// scriptStatVFS describes the file system of a path as statvfs(3) does:
// fundamental block size, blocks, free, available, inodes, free inodes,
// maximum name length, file system id. stat -f (busybox and GNU) reads
// statfs(2) itself; an image whose stat lacks -f falls back to df, whose
// 1K blocks give the sizes (inode counts then unknown: 0).
const scriptStatVFS = `[ -e "$1" ] || exit 3
stat -f -c '%S %b %f %a %c %d %l %i' -- "$1" 2>/dev/null && exit 0
echo df
exec df -Pk -- "$1"`

// StatVFS serves statvfs@openssh.com (df in OpenSSH's sftp, sshfs's df)
// from the container's view of the path.
func (c *containerFS) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	out, err := c.outputAt("statvfs", r.Filepath, scriptStatVFS, r.Filepath)
	if err != nil {
		return nil, err
	}
	return parseStatVFS(out)
}

func (c *containerFS) outputAt(op, path, script string, args ...string) (string, error) {
	var out strings.Builder
	err := c.exec(c.ctx, op, path, script, args, nil, &out)
	return out.String(), err
}

// parseStatVFS reads scriptStatVFS's output.
func parseStatVFS(out string) (*sftp.StatVFS, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] == "df" {
		// Filesystem 1024-blocks Used Available Capacity Mounted-on; a long
		// device name may push the numbers to the next line.
		f := strings.Fields(strings.Join(lines[min(2, len(lines)):], " "))
		if len(f) < 4 {
			return nil, fmt.Errorf("statvfs: df printed %q", out)
		}
		var n [3]uint64
		for i, s := range f[1:4] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("statvfs: df printed %q", out)
			}
			n[i] = v
		}
		total, used, avail := n[0], n[1], n[2]
		return &sftp.StatVFS{Bsize: 1024, Frsize: 1024, Blocks: total, Bfree: total - min(used, total), Bavail: avail, Namemax: 255}, nil
	}
	f := strings.Fields(lines[0])
	if len(f) < 8 {
		return nil, fmt.Errorf("statvfs: stat printed %q", out)
	}
	var n [7]uint64
	for i := range n {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("statvfs: stat printed %q", out)
		}
		n[i] = v
	}
	fsid, _ := strconv.ParseUint(f[7], 16, 64)
	return &sftp.StatVFS{Bsize: n[0], Frsize: n[0], Blocks: n[1], Bfree: n[2], Bavail: n[3],
		Files: n[4], Ffree: n[5], Favail: n[5], Namemax: n[6], Fsid: fsid}, nil
}
