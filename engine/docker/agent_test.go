package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// agentProcs counts the exec agents running in a container, asked by
// Docker exec so the count does not start one.
const agentProcs = `ps -o args | grep -c '[r]temu-agent'`

func dockerExecDriver(t *testing.T) *docker.Driver {
	t.Helper()
	d, err := docker.New(docker.WithoutExecAgent())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// A command run by the agent sees what a Docker exec would show it: the
// same environment, user, working directory and limits, with the spec's
// Env and WorkingDir applied the same way, and the same exit code and
// output when it cannot start at all.
//
// It holds for each source of the agent: the one built with the local Go
// toolchain (a Linux host's first choice without an embedded one, and
// macOS's and Windows's), and rtemu's own executable, the last resort.
func TestAgentMatchesDockerExec(t *testing.T) {
	t.Parallel()
	sources := []struct {
		name   string
		source string
		opts   func(t *testing.T) []docker.Option
	}{
		{"built agent", docker.AgentFromBuild, func(*testing.T) []docker.Option { return nil }},
		{"built agent, host unusable", docker.AgentFromBuild, func(t *testing.T) []docker.Option {
			return []docker.Option{docker.WithHostAgentUnusable(t.TempDir())}
		}},
		{"built agent, linked", docker.AgentFromBuild, func(*testing.T) []docker.Option { return linkedOptions }},
		{"host executable", docker.AgentFromHost, func(*testing.T) []docker.Option {
			return []docker.Option{docker.WithHostAgentFirst()}
		}},
		{"host executable, linked", docker.AgentFromHost, func(*testing.T) []docker.Option {
			return append([]docker.Option{docker.WithHostAgentFirst()}, linkedOptions...)
		}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			viaAgentDrv, name := newContainer(t, src.opts(t)...)
			if got := viaAgentDrv.Agent(context.Background()); got.Source != src.source || got.Platform != "linux/"+runtime.GOARCH {
				t.Fatalf("agent %+v, want source %q", got, src.source)
			}
			agentMatchesDockerExec(t, viaAgentDrv, name)
		})
	}
}

func agentMatchesDockerExec(t *testing.T, viaAgentDrv *docker.Driver, name string) {
	viaDocker := dockerExecDriver(t)
	if viaAgent(t, viaAgentDrv, name) == "docker exec" || viaAgent(t, viaDocker, name) != "docker exec" {
		t.Fatal("the two drivers must take the two paths")
	}
	const probe = `env | grep -v '^RTEMU_EXEC_ID=' | sort; echo "pwd=$(pwd) id=$(id) umask=$(umask)"; ulimit -a; cat /proc/self/cgroup; ls -l /proc/self/fd/0 | sed 's/.*-> //'; grep -E '^(Sig(Ign|Blk)|Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)' /proc/self/status; set -- $(cat /proc/$$/stat); echo "group leader: $([ $5 = $$ ] && echo yes || echo no); session leader: $([ $6 = $$ ] && echo yes || echo no)"`
	specs := []struct {
		name string
		spec docker.ExecSpec
	}{
		{"defaults", docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", probe}}},
		{"env and cwd", docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", probe}, Env: []string{"FROM_SPEC=replaced", "EXTRA=1", "PATH=/bin:/usr/bin"}, WorkingDir: "/tmp"}},
		{"relative argv0 on PATH", docker.ExecSpec{Cmd: []string{"sh", "-c", probe}}},
		{"missing working dir", docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", "echo ran"}, WorkingDir: "/no/such/dir"}},
		{"missing program", docker.ExecSpec{Cmd: []string{"no-such-program"}}},
	}
	for _, tt := range specs {
		t.Run(tt.name, func(t *testing.T) {
			results := make([]string, 2)
			for i, d := range []*docker.Driver{viaAgentDrv, viaDocker} {
				var out, errOut bytes.Buffer
				spec := tt.spec
				spec.Stdout, spec.Stderr = &out, &errOut
				code, err := d.Exec(context.Background(), name, spec)
				results[i] = strings.Join([]string{out.String(), errOut.String(), strconv.Itoa(code), errString(err)}, "\n--\n")
			}
			if results[0] != results[1] {
				t.Fatalf("agent:\n%s\n\ndocker exec:\n%s", results[0], results[1])
			}
		})
	}
}

// The agent's volume is read-only in the sandbox: nothing in one sandbox
// can change what another runs.
func TestAgentVolumeReadOnly(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	out, errOut, code, err := run(t, d, context.Background(), name, `ls `+docker.AgentMount+`/*; touch `+docker.AgentMount+`/current `+docker.AgentMount+`/new`)
	if err != nil || code == 0 || !strings.Contains(out, "rtemu-agent") || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("out=%q stderr=%q code=%d err=%v", out, errOut, code, err)
	}
}

// Agents end with the driver that started them (as they do when rtemu is
// killed: the engine closes their stdin), and one that died is replaced.
func TestAgentLifetime(t *testing.T) {
	t.Parallel()
	for _, p := range execPaths[:2] {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			agentLifetime(t, p.options, p.via)
		})
	}
}

func agentLifetime(t *testing.T, options []docker.Option, via string) {
	d, name := newContainer(t, options...)
	viaDocker := dockerExecDriver(t)
	ctx := context.Background()
	count := func() string {
		t.Helper()
		out, _, _, err := run(t, viaDocker, ctx, name, agentProcs)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	// The link's hub starts with the container; other agents with the
	// first command.
	before := "0"
	if via == "link" {
		before = "1"
	}
	if n := count(); n != before {
		t.Fatalf("agents before any command: %s, want %s", n, before)
	}
	if got := viaAgent(t, d, name); got != via {
		t.Fatalf("a command ran by %s, want %s", got, via)
	}
	// The agent is kept for the next command.
	if n := count(); n != "1" {
		t.Fatalf("agents after one command: %s, want 1", n)
	}
	// Sequential commands reuse it.
	for range 5 {
		if got := viaAgent(t, d, name); got != via {
			t.Fatalf("a command ran by %s, want %s", got, via)
		}
	}
	if n := count(); n != "1" {
		t.Fatalf("agents after six sequential commands: %s, want 1", n)
	}

	// A command that exits while its stdin is still coming (an SSH client
	// that keeps its end open) leaves the agent fit for the next one.
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	}()
	var got bytes.Buffer
	code, err := d.Exec(ctx, name, docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", "head -c 3"}, Stdin: pr, Stdout: &got})
	if err != nil || code != 0 || got.String() != "xxx" {
		t.Fatalf("head -c 3: %q code=%d err=%v", got.String(), code, err)
	}
	if out, _, code, err := run(t, d, ctx, name, "echo next"); err != nil || code != 0 || out != "next\n" {
		t.Fatalf("the command after: out=%q code=%d err=%v", out, code, err)
	}
	pr.Close()
	if n := count(); n != "1" {
		t.Fatalf("agents after a command whose stdin stayed open: %s, want 1", n)
	}

	// An agent killed behind the driver's back is replaced, and the
	// command still runs.
	if _, _, _, err := run(t, viaDocker, ctx, name, `for p in /proc/[0-9]*; do grep -q '[r]temu-agent' $p/cmdline 2>/dev/null && kill -9 ${p#/proc/}; done; true`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count() == "0" })
	if out, _, code, err := run(t, d, ctx, name, "echo again"); err != nil || code != 0 || out != "again\n" {
		t.Fatalf("after the agent died: out=%q code=%d err=%v", out, code, err)
	}
	if got := viaAgent(t, d, name); got != via {
		t.Fatalf("after the agent died a command ran by %s, want %s", got, via)
	}

	// A second driver's agent ends when that driver closes.
	other, err := docker.New()
	if err != nil {
		t.Fatal(err)
	}
	if viaAgent(t, other, name) != "stream" {
		t.Fatal("the second driver did not use an agent")
	}
	if n := count(); n != "2" {
		t.Fatalf("agents with two drivers: %s, want 2", n)
	}
	other.Close()
	waitFor(t, func() bool { return count() == "1" })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, cond, "condition not met")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return "error"
}

// Concurrent commands in one new sandbox are served by two agents (two
// Docker execs): the sandbox's own first agent, and the relay, whose
// streams carry the commands that came while the first was busy; not by an
// agent each.
func TestAgentConcurrentCommands(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	viaDocker := dockerExecDriver(t)
	const n = docker.AgentsKept + 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var out bytes.Buffer
			want := strconv.Itoa(i)
			code, err := d.Exec(context.Background(), name, docker.ExecSpec{
				Cmd: []string{"/bin/sh", "-c", `sleep 0.3; echo "$N"`}, Env: []string{"N=" + want}, Stdout: &out,
			})
			if err == nil && (code != 0 || out.String() != want+"\n") {
				err = fmt.Errorf("command %d: code %d, out %q", i, code, out.String())
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	out, _, _, err := run(t, viaDocker, context.Background(), name, agentProcs)
	if err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("agents after %d concurrent commands: %q (err %v), want 2 (its own and the relay)", n, out, err)
	}
}

// linkedContainer starts a container on a linking driver, checks that a
// command runs through the link, and returns its link folder too.
func linkedContainer(t *testing.T) (d *docker.Driver, name, dir string) {
	t.Helper()
	d, name = newContainer(t, linkedOptions...)
	if got := viaAgent(t, d, name); got != "link" {
		t.Fatalf("a command ran by %s, want link", got)
	}
	return d, name, linkFolder(t, d, name)
}

// linkFolder is the link folder the driver gave a container.
func linkFolder(t *testing.T, d *docker.Driver, name string) string {
	t.Helper()
	st, err := d.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	dir := st.Labels["rtemu.link"]
	if dir == "" {
		t.Fatalf("the container has no link folder: labels %v", st.Labels)
	}
	return dir
}

// hubOf says which hub ran a command: "at start" (the one the container's
// command started), "by exec" (one started by Docker exec), or "" (none:
// the command did not go through the link).
func hubOf(t *testing.T, d *docker.Driver, name string) string {
	t.Helper()
	out, _, _, err := run(t, d, context.Background(), name, `tr '\0' ' ' </proc/$PPID/environ`)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Contains(out, "RTEMU_AGENT_SERVE=link-start "):
		return "at start"
	case strings.Contains(out, "RTEMU_AGENT_SERVE=link "):
		return "by exec"
	}
	return ""
}

// The link's hub starts with the container (no Docker exec even for the
// first command), says its token and has it taken out of the folder; where
// it does not come in time (here: its script sleeps first), the first
// command starts one by Docker exec, within two seconds, and the hub at
// start that comes later is turned away without disturbing it.
func TestHubStartsWithContainer(t *testing.T) {
	t.Parallel()
	d := newDriver(t, linkedOptions...)
	name := newContainerOf(t, d)
	if got := hubOf(t, d, name); got != "at start" {
		t.Fatalf("the first command ran on the hub %q, want the one started with the container", got)
	}
	entries, err := os.ReadDir(linkFolder(t, d, name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "hub-token" {
			t.Fatal("the hub's token is still in the folder after it connected")
		}
	}

	late := createdContainer(t, d, testImage(t))
	script := filepath.Join(linkFolder(t, d, late), "hub")
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, append([]byte("sleep 3\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), late); err != nil {
		t.Fatal(err)
	}
	if got := hubOf(t, d, late); got != "by exec" {
		t.Fatalf("without the hub at start, the first command ran on the hub %q, want one started by exec", got)
	}
	// The hub at start comes (it said its token: the file is gone), is
	// turned away and ends.
	waitFor(t, func() bool {
		_, err := os.Stat(filepath.Join(linkFolder(t, d, late), "hub-token"))
		return os.IsNotExist(err)
	})
	viaDocker := dockerExecDriver(t)
	waitFor(t, func() bool {
		out, _, _, err := run(t, viaDocker, context.Background(), late, `grep -l RTEMU_AGENT_SERVE=link-start /proc/[0-9]*/environ 2>/dev/null | grep -vc self`)
		return err == nil && strings.TrimSpace(out) == "0"
	})
	for i := range 20 {
		if out, _, code, err := run(t, d, context.Background(), late, "echo on"); err != nil || code != 0 || out != "on\n" {
			t.Fatalf("command %d: out=%q code=%d err=%v", i, out, code, err)
		}
	}
	if got := hubOf(t, d, late); got != "by exec" {
		t.Fatalf("after the hub at start came late, a command ran on the hub %q, want the one started by exec", got)
	}
}

// A hub at start that nothing uses ends after a while (every sandbox starts
// one, and it holds memory of the sandbox's), and the next command starts
// one by exec; a hub that has been used is kept longer.
func TestUnusedHubEnds(t *testing.T) {
	t.Parallel()
	d := newDriver(t, append(slices.Clone(linkedOptions), docker.WithUnusedHubFor(500*time.Millisecond))...)
	unused, used := newContainerOf(t, d), newContainerOf(t, d)
	if got := hubOf(t, d, used); got != "at start" {
		t.Fatalf("the first command ran on the hub %q, want the one started with the container", got)
	}
	viaDocker := dockerExecDriver(t)
	waitFor(t, func() bool {
		out, _, _, err := run(t, viaDocker, context.Background(), unused, agentProcs)
		return err == nil && strings.TrimSpace(out) == "0"
	})
	if got := hubOf(t, d, unused); got != "by exec" {
		t.Fatalf("after the unused hub ended, a command ran on the hub %q, want one started by exec", got)
	}
	if out, _, _, err := run(t, viaDocker, context.Background(), used, agentProcs); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("hubs in the container whose hub was used: %q (err %v), want 1", out, err)
	}
}

// Where the hub cannot reach rtemu's socket (the engine's side of the
// folder is another folder of the same path: a VM's file sharing, a remote
// host), commands go by an agent on the engine's stream, and later
// containers get no link folder.
func TestLinkThatCannotConnect(t *testing.T) {
	t.Parallel()
	d := newDriver(t, linkedOptions...)
	name := createdContainer(t, d, testImage(t))
	dir := linkFolder(t, d, name)
	// The container keeps the folder it was given; rtemu's socket goes into
	// a new one of the same path (so neither the hub at start nor one
	// started by exec reaches it).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if got := viaAgent(t, d, name); got != "stream" {
		t.Fatalf("a command ran by %s, want stream", got)
	}
	if out, _, code, err := run(t, d, context.Background(), name, "echo still"); err != nil || code != 0 || out != "still\n" {
		t.Fatalf("out=%q code=%d err=%v", out, code, err)
	}
	second := newContainerOf(t, d)
	if st, err := d.Inspect(context.Background(), second); err != nil || st.Labels["rtemu.link"] != "" {
		t.Fatalf("a container made after the failure: labels %v (err %v), want no link folder", st.Labels, err)
	}
	if got := viaAgent(t, d, second); got != "stream" {
		t.Fatalf("in the second container a command ran by %s, want stream", got)
	}
}

// A linked container's folder goes with the container.
func TestLinkFolderRemoved(t *testing.T) {
	t.Parallel()
	d, name, dir := linkedContainer(t)
	if _, err := os.Stat(filepath.Join(dir, "agent.sock")); err != nil {
		t.Fatalf("the link's socket: %v", err)
	}
	if err := d.Remove(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the link folder after Remove: %v, want it gone", err)
	}
}

// The link folder is read-only in the sandbox, and a connection to the
// socket that does not say the hub's token (a process of the sandbox trying
// to pass for its agent) is closed without being used.
func TestLinkRefusesStrangers(t *testing.T) {
	t.Parallel()
	d, name, dir := linkedContainer(t)
	_, errOut, code, err := run(t, d, context.Background(), name, `touch `+docker.LinkMount+`/x || rm -f `+docker.LinkMount+`/agent.sock`)
	if err != nil || code == 0 || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("writing the link folder: code=%d stderr=%q err=%v", code, errOut, err)
	}
	c, err := net.Dial("unix", filepath.Join(dir, "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := agent.NewFrameWriter(c).Write(agent.FrameHello, []byte("not-the-token")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after a wrong token: read %d bytes, err %v; want the connection closed", n, err)
	}
	if out, _, code, err := run(t, d, context.Background(), name, "echo fine"); err != nil || code != 0 || out != "fine\n" {
		t.Fatalf("a command after: out=%q code=%d err=%v", out, code, err)
	}
}

// Agents end with the driver that started them (rtemu stopped or killed:
// their stdin, and the link's sockets, close), and so does what runs on
// them: on the link's hub, and on the sandbox's own agent and the relay's
// streams (the second command comes while the first is busy).
func TestAgentsEndWithTheDriver(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	for _, p := range execPaths[:2] {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, p.options...)
			name := newContainerOf(t, d)
			viaDocker := dockerExecDriver(t)
			if got := viaAgent(t, d, name); got != p.via {
				t.Fatalf("a command ran by %s, want %s", got, p.via)
			}
			count := func(cmd string) string {
				out, _, _, err := run(t, viaDocker, context.Background(), name, cmd)
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(out)
			}
			ran := make(chan error, 2)
			for _, secs := range []string{"304", "305"} {
				go func() {
					_, err := d.Exec(context.Background(), name, docker.ExecSpec{Cmd: []string{"/bin/sh", "-c", "sleep " + secs}})
					ran <- err
				}()
				waitFor(t, func() bool { return count(`ps -o args | grep -c '^sleep `+secs+`'`) == "1" })
			}
			d.Close()
			waitFor(t, func() bool { return count(agentProcs) == "0" && count(`ps -o args | grep -c '^sleep 30[45]'`) == "0" })
			for range 2 {
				select {
				case <-ran:
				case <-time.After(10 * time.Second):
					t.Fatal("an exec did not return after its driver closed")
				}
			}
		})
	}
}

// In an image whose user is not root, the hub runs as that user and still
// reaches rtemu's socket (the folder and the socket are open to every user;
// the token is the check).
func TestLinkAsUnprivilegedUser(t *testing.T) {
	t.Parallel()
	d := newDriver(t, linkedOptions...)
	ctx := context.Background()
	img := testImage(t)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	dockerfile := []byte("FROM " + img + "\nUSER 1000:1000\n")
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(dockerfile)
	_ = tw.Close()
	userImg := "rtemu-test/busybox-user1000:" + strings.ReplaceAll(strings.SplitN(img, ":", 2)[1], "/", "-")
	if _, err := d.Build(ctx, docker.BuildSpec{Context: &tb, Tag: userImg}, nil); err != nil {
		t.Fatal(err)
	}
	name := newContainerFrom(t, d, userImg)
	if got := viaAgent(t, d, name); got != "link" {
		t.Fatalf("a command ran by %s, want link", got)
	}
	if out, _, code, err := run(t, d, ctx, name, "id -u"); err != nil || code != 0 || out != "1000\n" {
		t.Fatalf("id -u: %q code=%d err=%v", out, code, err)
	}
}

// A container removed behind the driver's back still has its link folder
// removed when the driver is told to remove it.
func TestLinkFolderOfContainerRemovedOutside(t *testing.T) {
	t.Parallel()
	d, name, dir := linkedContainer(t)
	viaDocker := dockerExecDriver(t)
	if err := viaDocker.Remove(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the folder is gone before the driver was told: %v", err)
	}
	if err := d.Remove(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the link folder after Remove: %v, want it gone", err)
	}
}
