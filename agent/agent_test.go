//go:build linux

package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// session runs Serve on pipes, as the driver does over a Docker exec.
type session struct {
	t  *testing.T
	w  *FrameWriter
	r  *bufio.Reader
	in io.Closer
	// done receives Serve's return value.
	done chan int
}

func newSession(t *testing.T) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, w: NewFrameWriter(inW), r: bufio.NewReader(outR), in: inW, done: make(chan int, 1)}
	go func() { s.done <- Serve(inR, outW); outW.Close() }()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	if typ, p := s.read(); typ != FrameReady || string(p) != Version {
		t.Fatalf("first frame %q %q, want ready %q", typ, p, Version)
	}
	return s
}

func (s *session) read() (byte, []byte) {
	s.t.Helper()
	typ, p, err := ReadFrame(s.r)
	if err != nil {
		s.t.Fatalf("read frame: %v", err)
	}
	return typ, p
}

func (s *session) start(st Start) {
	s.t.Helper()
	b, _ := json.Marshal(st)
	if err := s.w.Write(FrameStart, b); err != nil {
		s.t.Fatal(err)
	}
}

// result reads a command's frames to its exit.
func (s *session) result() (stdout, stderr string, code int) {
	s.t.Helper()
	if typ, p := s.read(); typ != FrameStarted {
		s.t.Fatalf("frame %q %q, want started", typ, p)
	}
	var out, errOut strings.Builder
	for {
		typ, p := s.read()
		switch typ {
		case FrameStdout:
			out.Write(p)
		case FrameStderr:
			errOut.Write(p)
		case FrameExit:
			code, err := ExitCode(p)
			if err != nil {
				s.t.Fatal(err)
			}
			return out.String(), errOut.String(), code
		default:
			s.t.Fatalf("unexpected frame %q", typ)
		}
	}
}

func TestServeRunsCommands(t *testing.T) {
	t.Parallel()
	s := newSession(t)
	tests := []struct {
		name           string
		start          Start
		stdout, stderr string
		code           int
	}{
		{"streams and code", Start{Argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}}, "out\n", "err\n", 3},
		{"argv0 on the command's PATH", Start{Argv: []string{"sh", "-c", "echo $0"}, Env: []string{"PATH=/bin:/usr/bin"}}, "sh\n", "", 0},
		{"env replaces in place", Start{Argv: []string{"/bin/sh", "-c", `echo "$HOME $X"`}, Env: []string{"HOME=/elsewhere", "X=1"}}, "/elsewhere 1\n", "", 0},
		{"working dir", Start{Argv: []string{"/bin/pwd"}, Dir: "/tmp"}, "/tmp\n", "", 0},
		{"killed by a signal", Start{Argv: []string{"/bin/sh", "-c", "kill -9 $$"}}, "", "", 137},
		{"stdin is empty without Stdin", Start{Argv: []string{"/bin/sh", "-c", "cat; echo end"}}, "end\n", "", 0},
		{"own switch not passed on", Start{Argv: []string{"/bin/sh", "-c", "echo ${" + EnvServe + ":-unset}"}}, "unset\n", "", 0},
	}
	// One agent runs them in turn, as the driver reuses it.
	for _, tt := range tests {
		s.start(tt.start)
		out, errOut, code := s.result()
		if out != tt.stdout || errOut != tt.stderr || code != tt.code {
			t.Errorf("%s: stdout=%q stderr=%q code=%d; want %q %q %d", tt.name, out, errOut, code, tt.stdout, tt.stderr, tt.code)
		}
	}
}

func TestServeRefusesWhatCannotStart(t *testing.T) {
	t.Parallel()
	s := newSession(t)
	for _, st := range []Start{
		{Argv: []string{"no-such-program-anywhere"}},
		{Argv: []string{"/bin/true"}, Dir: "/no/such/dir"},
		{},
	} {
		s.start(st)
		if typ, p := s.read(); typ != FrameFailed || len(p) == 0 {
			t.Fatalf("%+v: frame %q %q, want failed with a reason", st, typ, p)
		}
	}
	// The agent still serves.
	s.start(Start{Argv: []string{"/bin/echo", "ok"}})
	if out, _, code := s.result(); out != "ok\n" || code != 0 {
		t.Fatalf("after refusals: %q %d", out, code)
	}
}

func TestServeStdin(t *testing.T) {
	t.Parallel()
	s := newSession(t)
	s.start(Start{Argv: []string{"/bin/sh", "-c", "wc -l"}, Stdin: true})
	if typ, _ := s.read(); typ != FrameStarted {
		t.Fatalf("frame %q", typ)
	}
	go func() {
		for range 1000 {
			_ = s.w.Write(FrameStdin, []byte("line\n"))
		}
		_ = s.w.Write(FrameStdinClose, nil)
	}()
	var out strings.Builder
	for {
		typ, p := s.read()
		if typ == FrameStdout {
			out.Write(p)
		}
		if typ == FrameExit {
			break
		}
	}
	if strings.TrimSpace(out.String()) != "1000" {
		t.Fatalf("wc -l said %q", out.String())
	}
}

// Kill ends the command and what it left in the background; the end of the
// host's stream does the same, and ends the agent.
func TestServeKill(t *testing.T) {
	t.Parallel()
	tag := "test" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")
	alive := func() bool {
		out, _ := exec.Command("/bin/sh", "-c", "grep -l 'RTEMU_EXEC_ID="+tag+"' /proc/[0-9]*/environ 2>/dev/null | wc -l").Output()
		return strings.TrimSpace(string(out)) != "0"
	}
	s := newSession(t)
	s.start(Start{Argv: []string{"/bin/sh", "-c", "sleep 300 & echo up; sleep 301"}, Env: []string{"RTEMU_EXEC_ID=" + tag}, Tag: tag})
	if typ, _ := s.read(); typ != FrameStarted {
		t.Fatalf("frame %q", typ)
	}
	if typ, p := s.read(); typ != FrameStdout || string(p) != "up\n" {
		t.Fatalf("frame %q %q", typ, p)
	}
	if !alive() {
		t.Fatal("the tagged processes are not visible")
	}
	if err := s.w.Write(FrameKill, nil); err != nil {
		t.Fatal(err)
	}
	for {
		typ, p := s.read()
		if typ == FrameExit {
			if code, _ := ExitCode(p); code != 137 {
				t.Fatalf("exit %d, want 137", code)
			}
			break
		}
	}
	if alive() {
		t.Fatal("a tagged process outlived the kill")
	}

	// Hang up in the middle of a command.
	tag2 := tag + "b"
	s.start(Start{Argv: []string{"/bin/sh", "-c", "sleep 302"}, Env: []string{"RTEMU_EXEC_ID=" + tag2}, Tag: tag2})
	if typ, _ := s.read(); typ != FrameStarted {
		t.Fatalf("frame %q", typ)
	}
	s.in.Close()
	select {
	case code := <-s.done:
		if code != 0 {
			t.Fatalf("Serve returned %d after EOF", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its input ended")
	}
	tag = tag2
	if alive() {
		t.Fatal("the command outlived the host's hang-up")
	}
}

// A host that hangs up right after a command's exit (its pool has no room
// for the agent) leaves what the command started in the background alone:
// the command ended as the host saw it. (A server started by one exec was
// killed by the hang-up 3 times in 30 before.)
func TestServeHangUpAfterExit(t *testing.T) {
	t.Parallel()
	for i := range 10 {
		tag := fmt.Sprintf("test%s%d-%s", t.Name(), i, time.Now().Format("150405.000000000"))
		s := newSession(t)
		s.start(Start{Argv: []string{"/bin/sh", "-c", "sleep 305 >/dev/null 2>&1 &"}, Env: []string{"RTEMU_EXEC_ID=" + tag}, Tag: tag})
		if _, _, code := s.result(); code != 0 {
			t.Fatalf("exit %d", code)
		}
		s.in.Close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its input ended")
		}
		out, _ := exec.Command("/bin/sh", "-c", "grep -l 'RTEMU_EXEC_ID="+tag+"' /proc/[0-9]*/environ 2>/dev/null").Output()
		pids := strings.Fields(string(out))
		if len(pids) != 1 {
			t.Fatalf("round %d: %d processes of the command left after the hang-up, want the background sleep", i, len(pids))
		}
		KillTagged("RTEMU_EXEC_ID=" + tag)
	}
}

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	got := mergeEnv([]string{"A=1", "B=2", "C=3"}, []string{"B=x", "D=4", "A=y", "D=5"})
	want := []string{"A=y", "B=x", "C=3", "D=5"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestFrames(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	w := NewFrameWriter(pw)
	go func() {
		_ = w.Write(FrameStdout, []byte("abc"))
		_ = w.Write(FrameExit, ExitPayload(-1))
		_ = w.Write(FrameStdout, make([]byte, MaxPayload+1)) // refused, not sent
		pw.Write([]byte{FrameStdout, 0xff, 0xff, 0xff, 0xff})
		pw.Close()
	}()
	r := bufio.NewReader(pr)
	if typ, p, err := ReadFrame(r); err != nil || typ != FrameStdout || string(p) != "abc" {
		t.Fatalf("%q %q %v", typ, p, err)
	}
	if _, p, err := ReadFrame(r); err != nil {
		t.Fatal(err)
	} else if code, err := ExitCode(p); code != -1 || err != nil {
		t.Fatalf("exit code %d %v", code, err)
	}
	if _, _, err := ReadFrame(r); err == nil {
		t.Fatal("an oversized frame was read")
	}
	if _, err := ExitCode([]byte{1}); err == nil {
		t.Fatal("a short exit payload was accepted")
	}
}

func TestHasVar(t *testing.T) {
	t.Parallel()
	env := []byte("A=1\x00RTEMU_EXEC_ID=abc\x00B=2\x00")
	for marker, want := range map[string]bool{"RTEMU_EXEC_ID=abc": true, "RTEMU_EXEC_ID=ab": false, "A=1": true, "B=2": true, "X=1": false} {
		if hasVar(env, marker) != want {
			t.Errorf("hasVar(%q) = %v", marker, !want)
		}
	}
}
