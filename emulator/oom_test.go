package emulator_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

// TestOutOfMemoryIsTheSandboxsBusiness runs a command that needs far more
// memory than its 256 MB sandbox has: the kernel kills it (137), the engine
// reports an oom event, and the sandbox goes on running (an oom activity
// event says what happened), across a restart of rtemu too.
func TestOutOfMemoryIsTheSandboxsBusiness(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	dir := t.TempDir()
	srv, err := emulatortest.Start(context.Background(), emulatortest.WithDataDir(dir),
		emulatortest.WithLog(t.Output()), emulatortest.WithContainersKept())
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, srv: srv, key: srv.APIKey}
	id := c.create(map[string]any{"resources": map[string]any{"memory": "256MB"}})["id"].(string)
	t.Cleanup(func() {
		_ = emulatortest.Docker(t).Remove(context.Background(), "rtemu-"+id)
	})

	// tail holds the whole unterminated "line" in memory: 700 MiB.
	res := c.exec(id, map[string]any{"command": "head -c 700m /dev/zero | tail", "timeout": 60000})
	if got := res["exitCode"].(float64); got != 137 {
		t.Fatalf("allocating 700 MiB in 256 MiB did not exit 137 (no OOM kill): %v", res)
	}
	pollUntil(t, 10*time.Second, "an oom activity event", func() bool {
		return slices.Contains(eventTypes(c.activity(id)), "oom")
	})
	if st := c.status(id); st != "running" {
		t.Fatalf("after the OOM kill the sandbox is %s (error %v)", st, c.must(200, "GET", "/v1/sandboxes/"+id, nil).Data()["error"])
	}
	if got := c.sh(id, "echo alive"); got != "alive\n" {
		t.Fatalf("next exec: %q", got)
	}
	if evs := eventTypes(c.activity(id)); slices.Contains(evs, "error") {
		t.Fatalf("an error event was recorded: %v", evs)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	c = &client{t: t, srv: emulatortest.New(t, emulatortest.WithDataDir(dir)), key: emulatortest.APIKey}
	if st := c.status(id); st != "running" {
		t.Fatalf("after a restart the sandbox is %s", st)
	}
	if got := c.sh(id, "echo still"); got != "still\n" {
		t.Fatalf("exec after restart: %q", got)
	}
}

// TestReconcileHealsWronglyInError: a record in error whose container runs
// (as an older rtemu left it after an OOM kill) is running again after a
// restart, with a recovered event, and takes execs.
func TestReconcileHealsWronglyInError(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	dir := t.TempDir()
	first, _, id := startRestartable(t, dir)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	const why = "the sandbox's container stopped outside rtemu (exit code 0)"
	if _, err := st.UpdateSandbox(ctx, id, func(sb *sandbox.Sandbox) error {
		sb.Status, sb.Error = sandbox.StatusError, why
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	c := &client{t: t, srv: emulatortest.New(t, emulatortest.WithDataDir(dir)), key: emulatortest.APIKey}
	sb := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data()
	if sb["status"] != "running" || sb["error"] != nil && sb["error"] != "" {
		t.Fatalf("after reconcile: status %v, error %v", sb["status"], sb["error"])
	}
	evs := c.activity(id)
	if len(evs) == 0 || evs[0]["eventType"] != "recovered" {
		t.Fatalf("newest event is not recovered: %v", eventTypes(evs))
	}
	if got := evs[0]["attributes"].(map[string]any)["error"]; got != why {
		t.Errorf("recovered event's error: %v", got)
	}
	if got := c.sh(id, "echo healed"); got != "healed\n" {
		t.Fatalf("exec after healing: %q", got)
	}
}

// pollUntil polls cond until it holds, failing the test after within.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, within, cond, "no %s", what)
}

// TestForkBombStaysInItsLimit: a command that starts processes without end
// stops at the sandbox's process limit; the command times out, every process
// it started goes with it, and the sandbox goes on running.
//
// Not parallel: 4000 processes slow a 2-core machine down for everything
// else (the engine's freezer timed out pausing another test's sandbox).
func TestForkBombStaysInItsLimit(t *testing.T) {
	c := newClient(t)
	id := c.create(nil)["id"].(string)
	max := strings.TrimSpace(c.sh(id, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"))
	if max != "4096" {
		t.Fatalf("pids.max %q", max)
	}
	// Each loop starts a sleeper until fork fails; the count of processes
	// in the sandbox's cgroup is written down as it climbs (a loaded
	// machine forks slowly), then twice at the top. Once the loop runs the
	// watcher forks nothing (read, echo and [ are the shell's own; it waits
	// by read -t on a fifo, not sleep): at the limit a fork of its own would
	// fail and end the script before the timeout.
	res := c.exec(id, map[string]any{"timeout": 20000, "command": `
		f=/sys/fs/cgroup/pids/pids.current; [ -r $f ] || f=/sys/fs/cgroup/pids.current
		mkfifo /tmp/wait
		( while :; do sleep 600 & done ) 2>/dev/null &
		n=0
		while read n < $f; [ "$n" -lt 4000 ]; do echo $n >> /tmp/peak; read -t 1 x <> /tmp/wait; done
		echo $n >> /tmp/peak; read -t 1 x <> /tmp/wait; read n < $f; echo $n >> /tmp/peak; echo top >> /tmp/peak
		read -t 60 x <> /tmp/wait`})
	if res["timedOut"] != true {
		t.Fatalf("the fork loop did not run to the timeout: %v", res)
	}
	peaks := strings.Fields(c.sh(id, "cat /tmp/peak"))
	if len(peaks) < 3 || peaks[len(peaks)-1] != "top" {
		t.Fatalf("the fork loop did not reach 4000 processes in 20 s: counts %v", peaks)
	}
	for _, p := range peaks[:len(peaks)-1] {
		if n, err := strconv.Atoi(p); err != nil || n > 4096 {
			t.Fatalf("processes at the peak: %v", peaks)
		}
	}
	if st := c.status(id); st != "running" {
		t.Fatalf("after the fork loop the sandbox is %s", st)
	}
	pollUntil(t, 20*time.Second, "the fork loop's processes to end", func() bool {
		n, err := strconv.Atoi(strings.TrimSpace(c.sh(id, "cat /sys/fs/cgroup/pids/pids.current 2>/dev/null || cat /sys/fs/cgroup/pids.current")))
		return err == nil && n < 50
	})
}
