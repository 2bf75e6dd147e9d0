package kubernetes_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/kubernetes"
)

func spec(name, image string) engine.ContainerSpec {
	return engine.ContainerSpec{Name: name, Image: image, Hostname: "k8stest", Labels: map[string]string{"rtemu.k8stest": "yes"},
		NanoCPUs: 5e8, MemoryBytes: 64 << 20, WorkingDir: "/workspace"}
}

func uniqueName(t *testing.T, what string) string {
	return "rtemu-k8stest-" + what + "-" + strings.ToLower(time.Now().Format("150405.000000"))
}

func removeAtEnd(t *testing.T, e *kubernetes.Engine, name string) {
	t.Cleanup(func() {
		if err := e.Remove(context.Background(), name); err != nil {
			t.Errorf("Remove at cleanup: %v", err)
		}
	})
}

// median of durations, for the latency log.
func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestLatencies measures what a sandbox costs on the cluster: create →
// running (Create + Start), an exec of true, and a delete until the API
// server no longer has the pod. It logs the medians (go test -v).
func TestLatencies(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	e := c.newEngine(t)
	c.waitImage(t, e)
	ctx := context.Background()
	var running, execs, deletes []time.Duration
	for i := range 3 {
		name := uniqueName(t, "lat") + "-" + string(rune('a'+i))
		t0 := time.Now()
		if err := e.Create(ctx, spec(name, c.image)); err != nil {
			t.Fatal(err)
		}
		removeAtEnd(t, e, name)
		if err := e.Start(ctx, name); err != nil {
			t.Fatal(err)
		}
		running = append(running, time.Since(t0))
		for range 10 {
			t1 := time.Now()
			code, err := e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"true"}})
			if err != nil || code != 0 {
				t.Fatalf("exec true: %d %v", code, err)
			}
			execs = append(execs, time.Since(t1))
		}
		t2 := time.Now()
		if err := e.Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
		deletes = append(deletes, time.Since(t2))
		if _, err := e.Inspect(ctx, name); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("Inspect after Remove = %v", err)
		}
	}
	t.Logf("create→running median %v (%v); exec true median %v over %d; delete median %v (%v)",
		median(running), running, median(execs), len(execs), median(deletes), deletes)
}

// A sandbox that asks for more than any node has fails its create at once,
// saying so; one that fits a node but not what is free on it fails its
// start with the scheduler's reason, never pending for ever.
func TestOverRequest(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	ctx := context.Background()
	e, err := kubernetes.New(kubernetes.Config{REST: c.rc, Namespace: testNamespace, PullPolicy: "Never", RequestRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	c.waitImage(t, e)
	huge := spec(uniqueName(t, "huge"), c.image)
	huge.MemoryBytes = 1 << 50
	if err := e.Create(ctx, huge); !errors.Is(err, kubernetes.ErrUnschedulable) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("Create asking for 1 PiB = %v, want ErrUnschedulable naming memory", err)
	}
	if _, err := e.Inspect(ctx, huge.Name); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a refused create left a pod: %v", err)
	}

	info, err := e.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two sandboxes each reserving 60% of the node's CPUs: the second
	// cannot be placed while the first runs.
	big := int64(info.CPUs) * 6e8
	first, second := spec(uniqueName(t, "first"), c.image), spec(uniqueName(t, "second"), c.image)
	first.NanoCPUs, second.NanoCPUs = big, big
	for _, s := range []engine.ContainerSpec{first, second} {
		if err := e.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		removeAtEnd(t, e, s.Name)
	}
	if err := e.Start(ctx, first.Name); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := e.Start(sctx, second.Name); !errors.Is(err, kubernetes.ErrUnschedulable) {
		t.Fatalf("Start of a sandbox no node has room for = %v, want ErrUnschedulable", err)
	}
}

// With HostFolders (a cluster on rtemu's own host) a mount is the host's
// folder: what the sandbox writes there, rtemu reads.
func TestHostFolderMount(t *testing.T) {
	c := needCluster(t)
	if !c.local {
		t.Skip("the cluster's node is not this host")
	}
	t.Parallel()
	e := c.newEngine(t)
	c.waitImage(t, e)
	ctx := context.Background()
	dir := t.TempDir()
	s := spec(uniqueName(t, "mount"), c.image)
	s.Mounts = []engine.Mount{{Source: dir, Target: "/workspace"}}
	if err := e.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, e, s.Name)
	if err := e.Start(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	code, err := e.Exec(ctx, s.Name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", "echo from-pod > note"}})
	if err != nil || code != 0 {
		t.Fatalf("write in the mount: %d %v", code, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "note")); err != nil || string(b) != "from-pod\n" {
		t.Fatalf("the host's folder has %q, %v", b, err)
	}
	// Without HostFolders a mount is refused, and no pod is made.
	off, err := kubernetes.New(kubernetes.Config{REST: c.rc, Namespace: testNamespace})
	if err != nil {
		t.Fatal(err)
	}
	s.Name += "-off"
	if err := off.Create(ctx, s); err == nil || !strings.Contains(err.Error(), "mount") {
		_ = off.Remove(ctx, s.Name)
		t.Fatalf("Create with a mount on an engine without shared folders = %v", err)
	}
}

// A command with a terminal gets the size it asked for, then each change.
func TestExecTTY(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	e := c.newEngine(t)
	c.waitImage(t, e)
	ctx := context.Background()
	name := uniqueName(t, "tty")
	if err := e.Create(ctx, spec(name, c.image)); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, e, name)
	if err := e.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", "stty size; [ -t 0 ] && echo tty"}, Tty: true,
		Size: &engine.WindowSize{Rows: 33, Cols: 101}, Stdout: &out})
	if err != nil || code != 0 || !strings.Contains(out.String(), "33 101") || !strings.Contains(out.String(), "tty") {
		t.Fatalf("tty exec: %q %d %v", out.String(), code, err)
	}
	// A resize reaches the command: it waits for SIGWINCH, then reports
	// the new size.
	resize := make(chan engine.WindowSize, 1)
	out2 := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		_, err := e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", `trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.1; done`},
			Tty: true, Size: &engine.WindowSize{Rows: 10, Cols: 20}, Resize: resize, Stdout: out2})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out2.String(), "ready") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	resize <- engine.WindowSize{Rows: 44, Cols: 120}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out2.String(), "44 120") {
			t.Fatalf("after a resize: %q %v", out2.String(), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the resize did not reach the command: %q", out2.String())
	}
}

// syncWriter is a buffer one goroutine writes while another reads it.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Pause stops the sandbox's processes, keeping them (same PID, same memory),
// and Unpause lets them go on.
func TestPauseKeepsProcesses(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	e := c.newEngine(t)
	c.waitImage(t, e)
	ctx := context.Background()
	name := uniqueName(t, "pause")
	if err := e.Create(ctx, spec(name, c.image)); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, e, name)
	if err := e.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	// A background process with state in memory only (its counter).
	var out bytes.Buffer
	code, err := e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c",
		`sh -c 'n=0; while :; do n=$((n+1)); echo $n > /tmp/n; sleep 0.05; done' </dev/null >/dev/null 2>&1 & echo $!`}, Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("start the counter: %d %v", code, err)
	}
	pid := strings.TrimSpace(out.String())
	// state is the counter process's state (T: stopped; "" when it is
	// gone) and its count ("" in the moment the file is rewritten).
	state := func() (string, string) {
		s, err := e.RunScript(ctx, name, `if read -r l < /proc/`+pid+`/stat; then s=${l##*") "}; echo "${s%% *}"; else echo; fi; cat /tmp/n 2>/dev/null; echo`)
		if err != nil {
			t.Fatalf("read the counter's state: %v", err)
		}
		st, n, _ := strings.Cut(s, "\n")
		return st, strings.TrimSpace(n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := state(); n == ""; _, n = state() { // not counting yet
		if time.Now().After(deadline) {
			t.Fatal("the counter does not count")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	st, n0 := state()
	if st != "T" {
		t.Fatalf("the counter after Pause is in state %q, want stopped (T)", st)
	}
	if st2, n2 := state(); st2 != st || n2 != n0 {
		t.Fatalf("the paused counter went on: %s %q, then %s %q", st, n0, st2, n2)
	}
	if err := e.Unpause(ctx, name); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		st, n := state()
		if st == "" {
			t.Fatalf("after Unpause the counter process %s is gone", pid)
		}
		if st != "T" && n != "" && n != n0 && n != "1" {
			break // the same process counts on from where it was
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Unpause the counter is %s %q (it was %q)", st, n, n0)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A server bound to 127.0.0.1 inside the sandbox is reached (dev URLs and
// ssh -L reach such servers on Docker too): through the agent's port relay,
// and by port-forward by an engine without the agent; a port nothing
// listens on is ECONNREFUSED either way.
func TestDialLoopback(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	e := c.newEngine(t)
	c.waitImage(t, e)
	ctx := context.Background()
	name := uniqueName(t, "loop")
	if err := e.Create(ctx, spec(name, c.image)); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, e, name)
	if err := e.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	code, err := e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c",
		"mkdir -p /www && echo loopback-only > /www/index.html && httpd -p 127.0.0.1:8091 -h /www"}})
	if err != nil || code != 0 {
		t.Fatalf("start httpd: %d %v", code, err)
	}
	without := c.newEngineWith(t, kubernetes.Config{NoAgent: true})
	for _, x := range []struct {
		how string
		e   *kubernetes.Engine
	}{{"agent relay", e}, {"port-forward", without}} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			conn, err := x.e.DialPort(ctx, name, 8091)
			if errors.Is(err, syscall.ECONNREFUSED) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("DialPort (%s): %v", x.how, err)
			}
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(conn)
			conn.Close()
			if err != nil || !strings.Contains(string(b), "loopback-only") {
				t.Fatalf("GET through DialPort (%s): %q %v", x.how, b, err)
			}
			break
		}
		if _, err := x.e.DialPort(ctx, name, 8092); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("DialPort (%s) to a port nothing listens on: %v; want ECONNREFUSED", x.how, err)
		}
	}
}

// Commands run on the exec agent the engine copies into the pod (the
// command's parent is the agent), after a pause and resume too; without the
// agent, and for a TTY, they are API-server execs.
func TestExecAgent(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	ctx := context.Background()
	withAgent, without := c.newEngine(t), c.newEngineWith(t, kubernetes.Config{NoAgent: true})
	c.waitImage(t, withAgent)
	name := uniqueName(t, "agent")
	if err := withAgent.Create(ctx, spec(name, c.image)); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, withAgent, name)
	if err := withAgent.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	parent := func(e *kubernetes.Engine, tty bool) string {
		t.Helper()
		var out, errOut syncWriter
		code, err := e.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", `tr '\0' ' ' </proc/$PPID/cmdline 2>/dev/null; echo " (parent $PPID)"`}, Stdout: &out, Stderr: &errOut, Tty: tty})
		if err != nil || code != 0 {
			t.Fatalf("exec (tty %v): %d %v (%q, %q)", tty, code, err, out.String(), errOut.String())
		}
		return out.String()
	}
	agentPath := kubernetes.AgentMount + "/rtemu-agent-"
	for i := range 3 {
		if got := parent(withAgent, false); !strings.HasPrefix(got, agentPath) {
			t.Fatalf("command %d's parent is %q, not the agent", i, got)
		}
	}
	if err := withAgent.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := withAgent.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"true"}}); !errors.Is(err, engine.ErrNotRunning) {
		t.Fatalf("exec while paused: %v, want ErrNotRunning", err)
	}
	if err := withAgent.Unpause(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got := parent(withAgent, false); !strings.HasPrefix(got, agentPath) {
		t.Fatalf("after resume the parent is %q, not the agent", got)
	}
	for _, tt := range []struct {
		what string
		e    *kubernetes.Engine
		tty  bool
	}{{"without the agent", without, false}, {"a TTY", withAgent, true}} {
		if got := parent(tt.e, tt.tty); strings.Contains(got, agentPath) {
			t.Errorf("%s, the parent is the agent: %q", tt.what, got)
		}
	}
}

// Standard input reaches the command whole, whatever its size and source
// (a file, as the SSH gateway's SFTP uploads pass it) and also when the
// command sends its stdout elsewhere and reads slowly (sh -c 'cat > FILE'):
// containerd closes an exec's stdin once its stdout ends, and the engine
// keeps the stdout open until the command has ended.
func TestExecStdinWhole(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	e := c.newEngine(t)
	c.waitImage(t, e)
	ctx := context.Background()
	s := spec(uniqueName(t, "stdin"), c.image)
	if err := e.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, e, s.Name)
	if err := e.Start(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16+3) // 1 MiB and 48 bytes
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cmd string
		in        func() io.Reader
		want      int
	}{
		{"file into a file", `exec cat > "$1"`, func() io.Reader { _, _ = f.Seek(0, io.SeekStart); return f }, len(body)},
		{"a slow reader into a file", `sleep 1; cat > "$1"`, func() io.Reader { return bytes.NewReader(body) }, len(body)},
		{"counted", `wc -c > "$1"`, func() io.Reader { return bytes.NewReader(body) }, -1},
		{"one byte", `cat > "$1"`, func() io.Reader { return strings.NewReader("x") }, 1},
		{"nothing", `cat > "$1"`, func() io.Reader { return strings.NewReader("") }, 0},
	} {
		if code, err := e.Exec(ctx, s.Name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", tc.cmd, "sh", "/tmp/in"}, Stdin: tc.in()}); err != nil || code != 0 {
			t.Fatalf("%s: exit %d, %v", tc.name, code, err)
		}
		var out bytes.Buffer
		if _, err := e.Exec(ctx, s.Name, engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", "wc -c < /tmp/in; cat /tmp/in | head -c 20; rm /tmp/in"}, Stdout: &out}); err != nil {
			t.Fatal(err)
		}
		got, _, _ := strings.Cut(out.String(), "\n")
		want := strconv.Itoa(tc.want)
		if tc.want < 0 { // the file holds wc's count of what it read
			got, want = out.String(), "8\n"+strconv.Itoa(len(body))+"\n"
		}
		if strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("%s: the command got %q bytes, want %s", tc.name, got, want)
		}
	}
}
