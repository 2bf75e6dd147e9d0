package sshgw

import (
	"testing"

	"github.com/pkg/sftp"
)

// TestParseStatVFS: stat -f's line, and df's table where an image's stat
// has no -f.
func TestParseStatVFS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, out string
		want      *sftp.StatVFS
	}{
		{"stat -f", "4096 1000 600 500 64000 63000 255 9a2b3c4d\n",
			&sftp.StatVFS{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 600, Bavail: 500, Files: 64000, Ffree: 63000, Favail: 63000, Namemax: 255, Fsid: 0x9a2b3c4d}},
		{"df", "df\nFilesystem 1024-blocks Used Available Capacity Mounted on\noverlay 2000 500 1400 27% /\n",
			&sftp.StatVFS{Bsize: 1024, Frsize: 1024, Blocks: 2000, Bfree: 1500, Bavail: 1400, Namemax: 255}},
		{"df, long device name", "df\nFilesystem 1024-blocks Used Available Capacity Mounted on\n/dev/mapper/a-very-long-name\n 2000 500 1400 27% /\n",
			&sftp.StatVFS{Bsize: 1024, Frsize: 1024, Blocks: 2000, Bfree: 1500, Bavail: 1400, Namemax: 255}},
		{"garbage", "nothing here\n", nil},
		{"df garbage", "df\nFilesystem\n", nil},
	}
	for _, tc := range tests {
		got, err := parseStatVFS(tc.out)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("%s: %+v, want an error", tc.name, got)
		case tc.want != nil && (err != nil || *got != *tc.want):
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
}
