package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/client"
	"github.com/rtemu-dev/rtemu/emulatortest"
)

// childArgs, in the environment, makes this test binary run rtemu's command
// line with these arguments (a JSON list) instead of the tests: tests that
// need rtemu as a process of its own (kill -9) run it so, with no build.
const childArgs = "RTEMU_CLI_TEST_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(childArgs); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			panic(err)
		}
		os.Exit(runChild(args))
	}
	if dir := os.Getenv(childTestRtemu); dir != "" {
		os.Exit(runTestRtemu(dir))
	}
	os.Exit(m.Run())
}

// result is one run of the command line.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the command line in-process with env as its whole environment.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, Version: "test"})
	return result{stdout.String(), stderr.String(), code}
}

func TestHelpAndUsage(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOME": t.TempDir()}
	tests := []struct {
		args []string
		code int
		want string // in stdout (code 0) or stderr
	}{
		{[]string{"--help"}, 0, "Client commands"},
		{[]string{"-h"}, 0, "rtemu [command]"},
		{[]string{"help", "serve"}, 0, "--ephemeral"},
		{[]string{"serve", "--help"}, 0, "--strict-lifecycle "},
		{[]string{"doctor", "-h"}, 0, "Check what rtemu needs"},
		{[]string{"sandbox", "create", "--help"}, 0, "--idle-timeout"},
		{[]string{"sandbox", "exec", "-h"}, 0, "its exit code is this command's exit status"},
		{[]string{"workspace", "--help"}, 0, "put"},
		{[]string{"ssh-key", "add", "--help"}, 0, "--file"},
		{[]string{"templates", "build", "--help"}, 0, "--base"},
		{[]string{"gc", "--help"}, 0, "--ephemeral rtemus whose process died"},
		{[]string{"version"}, 0, "rtemu test"},
		{[]string{"--version"}, 0, "rtemu test"},
		{[]string{"completion", "bash"}, 0, "bash completion"},
		{[]string{"completion", "zsh"}, 0, "compdef"},
		{[]string{"completion", "fish"}, 0, "complete -c rtemu"},
		{[]string{"completion", "powershell"}, 0, "Register-ArgumentCompleter"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"serve", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"serve", "--ephemeral=perhaps"}, 2, "--ephemeral"},
		{[]string{"doctor", "--auth", "maybe"}, 2, "is not on or off"},
		{[]string{"sandbox", "exec", "only-a-sandbox"}, 2, "wants a sandbox and a command"},
		{[]string{"sandbox", "get"}, 2, "takes 1 argument"},
		{[]string{"sandbox", "url", "x", "--port", "0"}, 2, "--port 0"},
		{[]string{"sandbox", "create", "--mount", "nocolon"}, 2, "WORKSPACE:PATH"},
		{[]string{"templates", "build"}, 2, "takes 1 argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, env, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			out := r.stdout
			if tt.code != 0 {
				out = r.stderr
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output lacks %q:\nstdout: %s\nstderr: %s", tt.want, r.stdout, r.stderr)
			}
		})
	}
}

func TestDashDash(t *testing.T) {
	t.Parallel()
	got := dashDash([]string{"-addr", "127.0.0.1:0", "-ephemeral", "-h", "--data-dir", "d", "-nosuch", "--", "-addr"})
	want := []string{"--addr", "127.0.0.1:0", "--ephemeral", "-h", "--data-dir", "d", "-nosuch", "--", "-addr"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSSHArgs(t *testing.T) {
	t.Parallel()
	info := &client.SSHInfo{Host: "127.0.0.1", Port: 2222, User: "sandbox-abc"}
	tests := []struct {
		extra []string
		want  string
	}{
		{nil, "-p 2222 -o HostKeyAlias=rtemu-127.0.0.1-2222 sandbox-abc@127.0.0.1"},
		{[]string{"-L", "3000:localhost:3000"}, "-p 2222 -o HostKeyAlias=rtemu-127.0.0.1-2222 -L 3000:localhost:3000 sandbox-abc@127.0.0.1"},
		{[]string{"-t", "uname", "-a"}, "-p 2222 -o HostKeyAlias=rtemu-127.0.0.1-2222 -t sandbox-abc@127.0.0.1 uname -a"},
	}
	for _, tt := range tests {
		if got := strings.Join(sshArgs(info, tt.extra), " "); got != tt.want {
			t.Errorf("sshArgs(%q) = %q, want %q", tt.extra, got, tt.want)
		}
	}
	v6 := strings.Join(sshArgs(&client.SSHInfo{Host: "::1", Port: 22, User: "u"}, nil), " ")
	if !strings.HasSuffix(v6, " u@[::1]") {
		t.Errorf("IPv6 destination %q", v6)
	}
}

// TestClientCommands drives the client commands against a real rtemu (on
// the fake engine) through its REST API, as a user's shell would.
func TestClientCommands(t *testing.T) {
	t.Parallel()
	srv := emulatortest.New(t, emulatortest.WithFake())
	env := map[string]string{"RUNTOOLS_API_URL": srv.URL, "RUNTOOLS_API_KEY": srv.APIKey, "HOME": t.TempDir()}

	r := run(t, env, "sandbox", "create", "--name", "cli-one", "--tag", "ci", "--env", "A=1", "--idle-timeout", "0")
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(id, "sandbox-") || !strings.Contains(r.stderr, id+": running") {
		t.Fatalf("create printed %q, progress %q", r.stdout, r.stderr)
	}

	r = run(t, env, "sandbox", "list")
	if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "cli-one") || !strings.Contains(r.stdout, "running") {
		t.Fatalf("list: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "sandbox", "list", "--json", "--tag", "ci")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["id"] != id {
		t.Fatalf("list --json: %v: %q", err, r.stdout)
	}
	r = run(t, env, "sandbox", "list", "--json", "--tag", "other")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("list --json of nothing: %q", r.stdout)
	}
	// Shell completion offers the sandboxes by name.
	r = run(t, env, "__complete", "sandbox", "exec", "")
	if r.code != 0 || !strings.Contains(r.stdout, "cli-one\t"+id+" running") {
		t.Fatalf("completion: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "sandbox", "get", "cli-one", "--json")
	var sb map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &sb); err != nil || sb["id"] != id || sb["idleTimeout"] != float64(0) {
		t.Fatalf("get --json: %v: %q", err, r.stdout)
	}

	// exec: output as it is, the command's exit code as the CLI's.
	r = run(t, env, "sandbox", "exec", "cli-one", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("exec: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "sandbox", "exec", "--env", "B=2", id, "printenv", "B")
	if r.code != 0 || r.stdout != "2\n" {
		t.Fatalf("exec with words: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "sandbox", "exec", "--json", id, "exit 5")
	var ex client.ExecResult
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil || ex.ExitCode != 5 || r.code != 5 {
		t.Fatalf("exec --json: exit %d, %v: %q", r.code, err, r.stdout)
	}

	for _, step := range []struct{ cmd, want string }{{"pause", "paused"}, {"resume", "running"}} {
		r = run(t, env, "sandbox", step.cmd, id)
		if r.code != 0 || strings.TrimSpace(r.stdout) != id+" "+step.want {
			t.Fatalf("%s: exit %d: %q %q", step.cmd, r.code, r.stdout, r.stderr)
		}
	}
	r = run(t, env, "sandbox", "ssh", id, "--json")
	var ssh client.SSHInfo
	if err := json.Unmarshal([]byte(r.stdout), &ssh); err != nil || ssh.User != id || ssh.Port == 0 {
		t.Fatalf("ssh --json: %v: %q", err, r.stdout)
	}

	r = run(t, env, "sandbox", "destroy", id)
	if r.code != 0 || strings.TrimSpace(r.stdout) != id+" destroyed" {
		t.Fatalf("destroy: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "sandbox", "get", id)
	if r.code != 0 || !strings.Contains(r.stdout, "destroyed") {
		t.Fatalf("get after destroy: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "sandbox", "destroy", "sandbox-nosuchnosuch")
	if r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("destroy of an unknown sandbox: exit %d: %q", r.code, r.stderr)
	}
	r = run(t, env, "sandbox", "create", "--template", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, "400") {
		t.Fatalf("create of an unknown template: exit %d: %q", r.code, r.stderr)
	}
}

func TestWorkspaceAndSSHKeyCommands(t *testing.T) {
	t.Parallel()
	srv := emulatortest.New(t, emulatortest.WithFake())
	home := t.TempDir()
	env := map[string]string{"RUNTOOLS_API_URL": srv.URL, "RUNTOOLS_API_KEY": srv.APIKey, "HOME": home}

	r := run(t, env, "workspace", "create", "Docs Project")
	ws := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(ws) != 36 {
		t.Fatalf("workspace create: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	local := home + "/notes.md"
	if err := os.WriteFile(local, []byte("# hi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"mkdir", ws, "/src"}, {"put", ws, local, "/src"}} {
		if r = run(t, env, append([]string{"workspace"}, args...)...); r.code != 0 {
			t.Fatalf("workspace %v: exit %d: %q", args, r.code, r.stderr)
		}
	}
	r = run(t, env, "workspace", "files", "docs-project", "/src")
	if r.code != 0 || !strings.Contains(r.stdout, "/src/notes.md") {
		t.Fatalf("files: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "workspace", "cat", ws, "/src/notes.md")
	if r.code != 0 || r.stdout != "# hi\n" {
		t.Fatalf("cat: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "workspace", "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["slug"] != "docs-project" {
		t.Fatalf("workspace list --json: %v: %q", err, r.stdout)
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"rename", ws, "/src/notes.md", "README.md"}, "/src/README.md"},
		{[]string{"cp", ws, "/src/README.md", "/"}, "/README.md"},
		{[]string{"mkdir", ws, "/old"}, ""},
		{[]string{"mv", ws, "/README.md", "/old"}, "/old/README.md"},
	} {
		r = run(t, env, append([]string{"workspace"}, step.args...)...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != step.want {
			t.Fatalf("workspace %v: exit %d: %q %q", step.args, r.code, r.stdout, r.stderr)
		}
	}
	if r = run(t, env, "workspace", "cat", ws, "/old/README.md"); r.stdout != "# hi\n" {
		t.Fatalf("cat after mv: %q %q", r.stdout, r.stderr)
	}
	if r = run(t, env, "workspace", "rm-files", ws, "/src/README.md", "/old"); r.code != 0 {
		t.Fatalf("rm-files: exit %d: %q", r.code, r.stderr)
	}
	if r = run(t, env, "workspace", "files", ws, "/src", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("files after rm-files: %q", r.stdout)
	}
	if r = run(t, env, "workspace", "delete", ws); r.code != 0 {
		t.Fatalf("workspace delete: exit %d: %q", r.code, r.stderr)
	}

	// ssh-key add reads ~/.ssh/id_ed25519.pub by default.
	const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXD4bHEQmYVQ1YmR3ugVsC8n3lWQ0Za3PXAqkl3yXmM me@laptop"
	if err := os.MkdirAll(home+"/.ssh", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(home+"/.ssh/id_ed25519.pub", []byte(pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, env, "ssh-key", "add", "laptop", "--json")
	var key client.SSHKey
	if err := json.Unmarshal([]byte(r.stdout), &key); err != nil || key.Name != "laptop" || !strings.HasPrefix(key.Fingerprint, "SHA256:") {
		t.Fatalf("ssh-key add: exit %d, %v: %q %q", r.code, err, r.stdout, r.stderr)
	}
	r = run(t, env, "ssh-key", "list")
	if r.code != 0 || !strings.Contains(r.stdout, key.ID) {
		t.Fatalf("ssh-key list: %q", r.stdout)
	}
	if r = run(t, env, "ssh-key", "add", "again"); r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Fatalf("the same key twice: exit %d: %q", r.code, r.stderr)
	}
	if r = run(t, env, "ssh-key", "rm", key.ID); r.code != 0 {
		t.Fatalf("ssh-key rm: exit %d: %q", r.code, r.stderr)
	}
	if r = run(t, env, "ssh-key", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("ssh-key list after rm: %q", r.stdout)
	}
}

// TestCreateProgressOnATerminal: on a terminal the progress is one line
// redrawn in place, and cleared at the end.
func TestCreateProgressOnATerminal(t *testing.T) {
	t.Parallel()
	srv := emulatortest.New(t, emulatortest.WithFake())
	env := map[string]string{"RUNTOOLS_API_URL": srv.URL, "RUNTOOLS_API_KEY": srv.APIKey}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"sandbox", "create"}, Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, Version: "test", Terminal: true})
	id := strings.TrimSpace(stdout.String())
	if code != 0 || !strings.HasPrefix(id, "sandbox-") {
		t.Fatalf("create: exit %d: %q %q", code, stdout.String(), stderr.String())
	}
	e := stderr.String()
	if !strings.HasPrefix(e, "\r\033[K") || !strings.Contains(e, id+" running") || !strings.HasSuffix(e, "\r\033[K") || strings.Contains(e, "\n") {
		t.Fatalf("progress on a terminal: %q", e)
	}
}

// TestStepBar: a build's steps become one bar redrawn in place; the
// build's own lines are shown only when it fails.
func TestStepBar(t *testing.T) {
	t.Parallel()
	lines := []string{"building base-ubuntu as rtemu/base-ubuntu:1 from ubuntu:24.04", "Step 1/4 : FROM ubuntu:24.04",
		" ---> 1234", "Step 2/4 : RUN apt-get update", "Get:1 http://archive.ubuntu.com", "Step 4/4 : LABEL x=y"}
	for _, failed := range []bool{false, true} {
		var bar, out bytes.Buffer
		b := &stepBar{w: &bar}
		for _, l := range lines {
			b.line(l)
		}
		b.end(failed, &out)
		got := bar.String()
		if !strings.HasPrefix(got, lines[0]+"\n") || !strings.Contains(got, "\r\033[K[------------------------] 1/4 FROM ubuntu:24.04") ||
			!strings.Contains(got, "\r\033[K[##################------] 4/4 LABEL x=y") || !strings.HasSuffix(got, "\r\033[K") ||
			strings.Contains(got, "Get:1") {
			t.Errorf("bar %q", got)
		}
		if failed != strings.Contains(out.String(), "Get:1 http://archive.ubuntu.com\n") {
			t.Errorf("failed %v, the build's lines: %q", failed, out.String())
		}
	}
}
