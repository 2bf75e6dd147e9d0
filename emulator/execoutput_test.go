package emulator_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// seqOutput is what `seq 1 n` prints.
func seqOutput(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// Output beyond the memory all commands share goes to files and comes back
// whole: three commands printing megabytes at once, with 1 MB to share,
// answer exactly what they printed; a flood keeps its first 10 MiB; what
// was kept is given back and no spill file is left.
func TestExecOutputBeyondMemory(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulatortest.WithExecOutputMemory(1<<20))
	id := c.create(nil)["id"].(string)
	out, errOut := seqOutput(300000), seqOutput(100000)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			r := c.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "seq 1 300000; seq 1 100000 >&2"})
			d := r.Data()
			if r.Status != http.StatusOK || d["stdout"] != out || d["stderr"] != errOut || d["stdoutTruncated"] != false || d["stderrTruncated"] != false {
				t.Errorf("%d: stdout %d bytes (want %d), stderr %d (want %d), truncated %v %v",
					r.Status, len(fmt.Sprint(d["stdout"])), len(out), len(fmt.Sprint(d["stderr"])), len(errOut), d["stdoutTruncated"], d["stderrTruncated"])
			}
		})
	}
	wg.Wait()
	r := c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "yes | head -c 12m"})
	d := r.Data()
	if s, _ := d["stdout"].(string); len(s) != sandbox.MaxExecOutput || !strings.HasPrefix(s, "y\ny\n") || d["stdoutTruncated"] != true {
		t.Errorf("flood: %d bytes, truncated %v; want the first %d", len(s), d["stdoutTruncated"], sandbox.MaxExecOutput)
	}
	use := c.srv.Service().ExecOutputUse()
	if use.Spills < 2 || use.InMemory != 0 || use.Limit != 1<<20 {
		t.Errorf("exec output use %+v: want spills (1 MB cannot hold this), nothing held after the answers", use)
	}
	if es, err := os.ReadDir(filepath.Join(c.srv.DataDir, "tmp", "exec-output")); err != nil || len(es) != 0 {
		t.Errorf("spill folder: %d files left, %v", len(es), err)
	}
}
