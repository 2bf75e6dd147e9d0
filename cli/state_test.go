package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/client"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/state"
)

// rtemu state save writes a running rtemu's state; rtemu state load puts it
// into a data dir no rtemu serves, whose next rtemu finds the sandboxes
// running with their files; rtemu state save then works on that stopped
// data dir too.
func TestStateSaveLoadCommands(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	ctx := context.Background()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv := emulatortest.New(t)
	cl := client.New(srv.URL, srv.APIKey, nil)
	sb, err := cl.CreateSandbox(ctx, client.CreateSandbox{Template: "base-ubuntu", Name: "cli-warm"})
	if err != nil {
		t.Fatal(err)
	}
	id := sb.ID
	waitRunning(t, cl, id)
	if res, err := cl.ExecSandbox(ctx, id, client.Exec{Command: "echo warmed > /root/w.txt"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("exec: %+v %v", res, err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "warm.tar")
	home := t.TempDir()
	r := run(t, map[string]string{"RUNTOOLS_API_URL": srv.URL, "HOME": home}, "state", "save", file)
	if r.code != 0 || !strings.Contains(r.stdout, "saved the state to "+file) {
		t.Fatalf("state save: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("beside the archive: %v", ents)
	}
	// Referring to the base image by name.
	thin := filepath.Join(t.TempDir(), "thin.tar")
	if r := run(t, map[string]string{"RUNTOOLS_API_URL": srv.URL, "HOME": home}, "state", "save", "--reference-images", thin); r.code != 0 {
		t.Fatalf("state save --reference-images: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	if f, err := os.Open(thin); err != nil {
		t.Fatal(err)
	} else {
		m, err := state.ReadManifest(f)
		f.Close()
		if err != nil || m.Version != 2 || len(m.Referenced) != 1 || m.Referenced[0] != img {
			t.Fatalf("manifest of state save --reference-images: %+v %v", m, err)
		}
	}

	// Into a stopped (never started) data dir.
	data := t.TempDir()
	env := map[string]string{"HOME": home}
	r = run(t, env, "state", "load", file, "--data-dir", data, "--template", "base-ubuntu="+img)
	if r.code != 0 || !strings.Contains(r.stdout, "1 sandboxes") {
		t.Fatalf("state load: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	srv2, err := emulatortest.Start(ctx, emulatortest.WithDataDir(data), emulatortest.WithContainersKept())
	if err != nil {
		t.Fatal(err)
	}
	cl2 := client.New(srv2.URL, srv2.APIKey, nil)
	waitRunning(t, cl2, id)
	if res, err := cl2.ExecSandbox(ctx, id, client.Exec{Command: "cat /root/w.txt"}); err != nil || res.Stdout != "warmed\n" {
		t.Fatalf("loaded sandbox: %+v %v", res, err)
	}
	if err := srv2.Close(); err != nil {
		t.Fatal(err)
	}
	// From the stopped data dir (its sandbox still runs).
	file2 := filepath.Join(dir, "again.tar")
	r = run(t, env, "state", "save", file2, "--data-dir", data, "--template", "base-ubuntu="+img)
	if r.code != 0 {
		t.Fatalf("state save of a stopped data dir: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	// And the data dir's rtemu removes its sandbox at the end.
	srv3 := emulatortest.New(t, emulatortest.WithDataDir(data))
	waitRunning(t, client.New(srv3.URL, srv3.APIKey, nil), id)
}

func waitRunning(t *testing.T, cl *client.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := cl.WaitSandbox(ctx, id, 50*time.Millisecond, nil, "creating")
	if err != nil || sb.Status != "running" {
		t.Fatalf("sandbox %s: %+v %v", id, sb, err)
	}
}
