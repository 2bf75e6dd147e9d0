package sshgw_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// TestCommandsExitStatus: `ssh host CMD` gives CMD's stdout and stderr on
// their own streams and its exit status, in every way a command ends, with
// both clients. Issue 3 point 4.
func TestCommandsExitStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(nil)
	c := h.mustDial(id, gossh.PublicKeys(key.signer))

	tests := []struct {
		name           string
		cmd            string
		stdin          string
		stdout, stderr string
		code           int
	}{
		{"streams and status", "echo out; echo err >&2; exit 7", "", "out\n", "err\n", 7},
		{"success", "true", "", "", "", 0},
		{"not found", "no-such-command", "", "", "*", 127},
		{"killed by SIGTERM", "echo before; kill -TERM $$; echo after", "", "before\n", "", 128 + 15},
		{"killed by SIGKILL", "kill -KILL $$", "", "", "", 128 + 9},
		{"stdin to EOF", "cat; echo done", "hello\n", "hello\ndone\n", "", 0},
		{"runs in the home dir as root", "pwd; id -u", "", "/root\n0\n", "", 0},
		{"background process keeps stdout", "sleep 30 & echo started", "", "started\n", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(client string, r result) {
				t.Helper()
				if r.stdout != tc.stdout || r.code != tc.code || (tc.stderr != "*" && r.stderr != tc.stderr) || (tc.stderr == "*" && r.stderr == "") {
					t.Errorf("%s: got stdout %q stderr %q status %d; want %q %q %d", client, r.stdout, r.stderr, r.code, tc.stdout, tc.stderr, tc.code)
				}
			}
			start := time.Now()
			check("x/crypto", run(t, c, tc.cmd, strings.NewReader(tc.stdin)))
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
			check("OpenSSH", openssh(t, h.ssh("ssh", append(withKey(key), target(id, h), tc.cmd)...), strings.NewReader(tc.stdin)))
		})
	}

	// A command killed from outside (another session) reports the signal.
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start("sleep 4711"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "sleep to start", func() bool { return strings.Contains(h.sh(id, "ps"), "sleep 4711") })
	h.sh(id, `ps -o pid,args | awk '/sleep 4711/ && !/awk/ {print $1}' | xargs kill -TERM`)
	var ee *gossh.ExitError
	if err := s.Wait(); !asExit(err, &ee) || ee.ExitStatus() != 143 {
		t.Errorf("killed from outside: %v, want exit status 143", err)
	}
}

func asExit(err error, ee **gossh.ExitError) bool {
	e, ok := err.(*gossh.ExitError)
	*ee = e
	return ok
}

// TestStdinStreams: 50 MB piped through `cat` arrive unchanged, with
// OpenSSH and with x/crypto. Issue 3 point 4.
func TestStdinStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(nil)

	const size = 50 << 20
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)

	start := time.Now()
	r := openssh(t, h.ssh("ssh", append(withKey(key), target(id, h), "cat")...), bytes.NewReader(data))
	if r.code != 0 || len(r.stdout) != size || sha256.Sum256([]byte(r.stdout)) != want {
		t.Fatalf("OpenSSH: status %d, %d bytes back, checksum differs", r.code, len(r.stdout))
	}
	t.Logf("50 MB through cat with OpenSSH: %v", time.Since(start))

	// x/crypto: the checksum is taken inside the sandbox too.
	c := h.mustDial(id, gossh.PublicKeys(key.signer))
	start = time.Now()
	r = run(t, c, "sha256sum | cut -d' ' -f1", bytes.NewReader(data))
	if r.code != 0 || strings.TrimSpace(r.stdout) != hex.EncodeToString(want[:]) {
		t.Fatalf("x/crypto: %+v, want %x", r, want)
	}
	t.Logf("50 MB into sha256sum with x/crypto: %v", time.Since(start))
}

// TestPTY: a shell gets a PTY that follows window changes; OpenSSH's
// `ssh -tt host tty` prints a /dev/pts path. Issue 3 point 3.
func TestPTY(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(nil)

	r := openssh(t, h.ssh("ssh", append(withKey(key), "-tt", target(id, h), "tty; echo TERM=$TERM; exit 3")...), nil)
	if !strings.HasPrefix(r.stdout, "/dev/pts/") || r.code != 3 {
		t.Fatalf("ssh -tt tty: %+v", r)
	}

	c := h.mustDial(id, gossh.PublicKeys(key.signer))
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm-256color", 40, 100, gossh.TerminalModes{gossh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &emulatortest.Buffer{}
	s.Stdout = out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(marker string) {
		t.Helper()
		eventually(t, 20*time.Second, fmt.Sprintf("%q in the terminal (got %q)", marker, out.String()), func() bool {
			return strings.Contains(out.String(), marker)
		})
	}
	// Markers are printed by printf so the echoed command line never
	// matches them.
	send(`tty; printf 'T=%s\n' "$TERM"`)
	waitFor("T=xterm-256color")
	// Engines before API 1.42 ignore the size given at exec create, so the
	// gateway also resizes right after the start; that lands
	// asynchronously (under load a first `stty size` can even fail): ask
	// until the start size shows.
	eventually(t, 20*time.Second, "stty size to show the size asked for at start", func() bool {
		send(`printf 'SIZE=%s\n' "$(stty size)"`)
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(out.String(), "SIZE=40 100")
	})
	if !strings.Contains(out.String(), "/dev/pts/") {
		t.Errorf("no /dev/pts in %q", out.String())
	}
	if err := s.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	// The resize reaches the engine asynchronously: ask until it shows.
	eventually(t, 20*time.Second, "stty size to follow the window change", func() bool {
		send(`printf 'NOW=%s\n' "$(stty size)"`)
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(out.String(), "NOW=50 132")
	})
	send("exit 5")
	var ee *gossh.ExitError
	if err := s.Wait(); !asExit(err, &ee) || ee.ExitStatus() != 5 {
		t.Fatalf("shell exit: %v, want status 5", err)
	}
}

// TestHangUpEndsProcess: when a client disconnects, the process it ran in
// the container is ended — whether it dropped the TCP connection, closed
// just the session, or was an OpenSSH client that got killed. Issue 3
// points 4 and 11.
func TestHangUpEndsProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(nil)

	running := func(marker string) bool { return strings.Contains(h.sh(id, "ps -o args"), marker) }
	started := func(marker string) {
		t.Helper()
		eventually(t, 20*time.Second, marker+" to start", func() bool { return running(marker) })
	}
	gone := func(marker string) {
		t.Helper()
		eventually(t, 20*time.Second, marker+" to end after the hang-up", func() bool { return !running(marker) })
	}

	t.Run("connection dropped", func(t *testing.T) {
		c, err := h.dial(id, gossh.PublicKeys(key.signer))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := c.NewSession()
		// A child and a background grandchild: the whole tree must end.
		if err := s.Start("sleep 5001 & sleep 5002; echo never"); err != nil {
			t.Fatal(err)
		}
		started("sleep 5002")
		c.Close()
		gone("sleep 5001")
		gone("sleep 5002")
	})
	t.Run("session closed", func(t *testing.T) {
		c := h.mustDial(id, gossh.PublicKeys(key.signer))
		s, _ := c.NewSession()
		if err := s.Start("sleep 5003"); err != nil {
			t.Fatal(err)
		}
		started("sleep 5003")
		s.Close()
		gone("sleep 5003")
		// The connection still serves new sessions.
		if r := run(t, c, "echo alive", nil); r.stdout != "alive\n" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("OpenSSH killed, with a PTY", func(t *testing.T) {
		cmd := h.ssh("ssh", append(withKey(key), "-tt", target(id, h), "sleep 5004")...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started("sleep 5004")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		gone("sleep 5004")
	})
}

// TestConcurrentSessions: 20 sessions at once across 5 sandboxes, half
// through OpenSSH and half through x/crypto, each gets its own output.
// Issue 3 point 11.
func TestConcurrentSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	ids := make([]string, 5)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = h.sandbox(map[string]any{"name": fmt.Sprintf("box-%d", i)})
		}()
	}
	wg.Wait()
	for i, id := range ids {
		h.sh(id, fmt.Sprintf("echo box-%d > /root/whoami", i))
	}

	start := time.Now()
	errs := make(chan error, 20)
	for n := 0; n < 20; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := n % 5
			payload := strings.Repeat(fmt.Sprintf("session-%02d;", n), 2000)
			cmd := fmt.Sprintf("sleep 1; cat /root/whoami; cat; exit %d", n)
			var r result
			var err error
			if n%2 == 0 {
				c, derr := h.dial(ids[box], gossh.PublicKeys(key.signer))
				if derr != nil {
					errs <- derr
					return
				}
				defer c.Close()
				r, err = runE(c, cmd, strings.NewReader(payload))
			} else {
				r, err = opensshE(h.ssh("ssh", append(withKey(key), target(ids[box], h), cmd)...), strings.NewReader(payload))
			}
			if err != nil {
				errs <- fmt.Errorf("session %d: %w", n, err)
				return
			}
			if want := fmt.Sprintf("box-%d\n%s", box, payload); r.stdout != want || r.code != n {
				errs <- fmt.Errorf("session %d: status %d, output %.40q…, want %.40q…", n, r.code, r.stdout, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("20 concurrent sessions across 5 sandboxes: %v", time.Since(start))
}

// TestPausedSandboxResumedOnConnect: connecting to a paused sandbox resumes
// it; a session keeps the sandbox active while it is open. Issue 3 point 9.
func TestPausedSandboxResumedOnConnect(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(map[string]any{"name": "sleepy"})
	h.sh(id, "echo kept > /root/state")

	h.mustAPI(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	d := h.waitStatus(id, "paused")
	if d["sshReady"] != false {
		t.Errorf("paused sandbox: sshReady %v", d["sshReady"])
	}
	r := openssh(t, h.ssh("ssh", append(withKey(key), target("sleepy", h), "cat /root/state")...), nil)
	if r.code != 0 || r.stdout != "kept\n" {
		t.Fatalf("ssh to a paused sandbox: %+v", r)
	}
	d = h.waitStatus(id, "running")
	if d["resumedAt"] == nil || d["sshReady"] != true {
		t.Errorf("after ssh: %v", d)
	}

	// An open session is activity: the idle timer sees the sandbox busy
	// until the session ends.
	svc := h.srv.Service()
	c := h.mustDial(id, gossh.PublicKeys(key.signer))
	s, _ := c.NewSession()
	if err := s.Start("sleep 3"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the session to count as activity", func() bool {
		_, idle := svc.Idle(id, time.Now())
		return !idle
	})
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the sandbox to be idle again", func() bool {
		d, idle := svc.Idle(id, time.Time{})
		return idle && d < time.Minute
	})

	// Every session is in the sandbox's activity feed, opened and closed.
	feed := h.mustAPI(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/activity", nil)["events"].([]any)
	kinds := map[string]int{}
	for _, e := range feed {
		kinds[e.(map[string]any)["eventType"].(string)]++
	}
	if kinds["ssh.connected"] < 2 || kinds["ssh.disconnected"] < 2 {
		t.Errorf("activity after two sessions: %v", kinds)
	}
	if d := h.mustAPI(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil); d["lastActivityAt"] == nil {
		t.Errorf("lastActivityAt not set: %v", d)
	}
}

// TestHostKeyFile: the host key is an OpenSSH ed25519 key kept in the data
// dir, private to its owner.
func TestHostKeyFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := filepath.Join(h.srv.DataDir, "ssh_host_ed25519_key")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v", st.Mode().Perm())
	}
	r := openssh(t, exec.Command("ssh-keygen", "-l", "-f", p), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "(ED25519)") || !strings.Contains(r.stdout, gossh.FingerprintSHA256(h.hostKey)) {
		t.Fatalf("ssh-keygen -l: %+v", r)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Scan()
	t.Logf("host key: %s", sc.Text())
}
