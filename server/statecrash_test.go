package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/client"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/state"
	"github.com/rtemu-dev/rtemu/store"
)

// stateArchive saves an in-process rtemu's state of one sandbox per name,
// each having written its name into /root/who, to a file; it returns the
// file, its manifest and the sandboxes' ids by name.
func stateArchive(t *testing.T, names ...string) (string, state.Manifest, map[string]string) {
	t.Helper()
	ctx := context.Background()
	srv := emulatortest.New(t)
	cl := client.New(srv.URL, srv.APIKey, nil)
	ids := map[string]string{}
	for _, n := range names {
		sb, err := cl.CreateSandbox(ctx, client.CreateSandbox{Template: "base-ubuntu", Name: n})
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = sb.ID
	}
	for n, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		sb, err := cl.WaitSandbox(wctx, id, 50*time.Millisecond, nil, "creating")
		cancel()
		if err != nil || sb.Status != "running" {
			t.Fatalf("sandbox %s: %+v %v", n, sb, err)
		}
		if res, err := cl.ExecSandbox(ctx, id, client.Exec{Command: "echo " + n + " > /root/who"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("exec: %+v %v", res, err)
		}
	}
	file := filepath.Join(t.TempDir(), "state.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SaveState(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(file)
	m, err := state.ReadManifest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return file, m, ids
}

// postArchive loads an archive into a running rtemu; a process killed
// meanwhile answers with an error (code 0).
func (p *proc) postArchive(file string) (int, string) {
	p.t.Helper()
	f, err := os.Open(file)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	return p.send("POST", "/_emulator/state", "application/x-tar", f)
}

// exitedKilled waits for rtemu to end on its own, and says whether SIGKILL
// ended it.
func (p *proc) exitedKilled(within time.Duration) bool {
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		p.t.Fatalf("rtemu did not die at its crash point; log:\n%s", p.log)
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// A load killed (SIGKILL) at any of its steps leaves, once rtemu starts
// again, the state before it whole or the loaded one whole: the sandboxes
// of one of them running with their files, the seed of that one, and no
// container, image or folder of the other left.
func TestStateLoadKilled(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	ctx := context.Background()
	oldFile, oldM, oldIDs := stateArchive(t, "old")
	newFile, newM, newIDs := stateArchive(t, "new1", "new2")
	d := driver(t)

	for _, tc := range []struct {
		step string
		// want: the state after the restart, "old" or "new".
		want string
	}{
		{"load-read", "old"},          // read and checked, images in the engine
		{"load-journaled", "new"},     // the journal written
		{"load-seed-moved", "new"},    // between the seed's two renames
		{"swap-cleared", "new"},       // old containers and records gone
		{"swap-records", "new"},       // new records in, workspaces not yet
		{"swap-making", "new"},        // the first new sandbox made
		{"swap-dropped", "new"},       // old seed's images gone, journal not yet
		{"reset-swap-cleared", "new"}, // a reset to the seed (not a load) killed
	} {
		t.Run(tc.step, func(t *testing.T) {
			dataDir := t.TempDir()
			var inst string
			t.Cleanup(func() {
				// What this case's rtemu left: its containers, both seeds'
				// images (the same names in every case).
				if inst != "" {
					cs, _ := d.List(ctx, map[string]string{sandbox.LabelInstance: inst})
					for _, c := range cs {
						_ = d.Remove(ctx, c.Name)
					}
				}
				for _, ref := range append(slices.Clone(oldM.Images), newM.Images...) {
					_ = d.RemoveImage(ctx, ref)
				}
			})
			// The state before: archive "old" loaded (a seed, with images).
			p := startRtemu(t, dataDir)
			if code, body := p.postArchive(oldFile); code != http.StatusOK {
				t.Fatalf("load old: %d %s", code, body)
			}
			p.kill()
			step, crashFile := tc.step, newFile
			if strings.HasPrefix(step, "reset-") {
				// The crash in a reset to the seed: "new" is loaded
				// whole first, then changed, then reset to.
				step = strings.TrimPrefix(step, "reset-")
				p = startRtemu(t, dataDir)
				if code, body := p.postArchive(newFile); code != http.StatusOK {
					t.Fatalf("load new: %d %s", code, body)
				}
				if code, _ := p.do("DELETE", "/v1/sandboxes/"+newIDs["new1"], nil); code != http.StatusOK {
					t.Fatalf("delete: %d", code)
				}
				p.kill()
				crashFile = ""
			}
			p = startRtemuVia(t, dataDir, "env", "RTEMU_TEST_CRASH_AT="+step)
			if crashFile != "" {
				code, body := p.postArchive(crashFile)
				if code != 0 {
					t.Fatalf("the load was answered (%d %s): no crash at %s", code, body, step)
				}
			} else if code, body := p.doRaw("POST", "/_emulator/reset", map[string]any{"to": "seed"}); code != 0 {
				t.Fatalf("the reset was answered (%d %s): no crash at %s", code, body, step)
			}
			if !p.exitedKilled(2 * time.Minute) {
				t.Fatalf("rtemu did not end by SIGKILL at %s; log:\n%s", step, p.log)
			}

			p = startRtemu(t, dataDir)
			wantIDs, goneIDs, wantM, goneM := newIDs, oldIDs, newM, oldM
			if tc.want == "old" {
				wantIDs, goneIDs, wantM, goneM = oldIDs, newIDs, oldM, newM
			}
			for n, id := range wantIDs {
				p.waitStatus(id, "running", time.Minute)
				if code, data := p.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": "cat /root/who"}); code != 200 || data["stdout"] != n+"\n" {
					t.Errorf("sandbox %s after the restart: %d %v", n, code, data)
				}
			}
			for n, id := range goneIDs {
				if code, _ := p.do("GET", "/v1/sandboxes/"+id, nil); code != http.StatusNotFound {
					t.Errorf("sandbox %s of the %s state is there (%d)", n, map[string]string{"old": "new", "new": "old"}[tc.want], code)
				}
			}
			p.kill()

			// Folders: the seed is the wanted state's, nothing else is left.
			b, err := os.ReadFile(filepath.Join(dataDir, "seed", state.ManifestName))
			var seed state.Manifest
			if err != nil || json.Unmarshal(b, &seed) != nil || seed.ID != wantM.ID {
				t.Errorf("the seed is %q (%v), want %q", seed.ID, err, wantM.ID)
			}
			ents, _ := os.ReadDir(dataDir)
			for _, e := range ents {
				n := e.Name()
				if strings.HasPrefix(n, "state-") || strings.HasPrefix(n, "seed.") {
					t.Errorf("left in the data dir: %s", n)
				}
			}
			// Images: the wanted seed's all there, the other's none.
			for _, ref := range wantM.Images {
				if ok, err := d.ImagePresent(ctx, ref); err != nil || !ok {
					t.Errorf("the seed's image %s is missing (%v)", ref, err)
				}
			}
			for _, ref := range goneM.Images {
				if ok, err := d.ImagePresent(ctx, ref); err != nil || ok {
					t.Errorf("image %s of the other state is left (%v)", ref, err)
				}
			}
			// Containers: exactly the live sandboxes'.
			st, err := store.Open(ctx, filepath.Join(dataDir, "rtemu.db"))
			if err != nil {
				t.Fatal(err)
			}
			inst = st.InstanceID()
			live, err := st.LiveSandboxes(ctx)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, sb := range live {
				want = append(want, sb.ContainerName())
			}
			cs, err := d.List(ctx, map[string]string{sandbox.LabelInstance: inst})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cs {
				got = append(got, c.Name)
			}
			slices.Sort(want)
			slices.Sort(got)
			if len(want) != len(wantIDs) || !slices.Equal(got, want) {
				t.Errorf("containers %v, want those of the %d live sandboxes %v", got, len(wantIDs), want)
			}
		})
	}
}
