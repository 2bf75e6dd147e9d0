package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Serve runs commands as the host asks until in ends, then kills what is
// still running and returns the exit status for the process.
func Serve(in io.Reader, out io.Writer) int {
	w := NewFrameWriter(out)
	if err := w.Write(FrameReady, []byte(Version)); err != nil {
		return 1
	}
	return serveLoop(bufio.NewReader(in), w, baseEnv(), nil)
}

// serveLoop runs the commands r's frames ask for, one at a time. On a linked
// connection (raw, see ServeLink) a FramePort between commands makes the
// connection a relay to that port instead, for the rest of its life.
func serveLoop(r *bufio.Reader, w *FrameWriter, base []string, raw net.Conn) int {
	var cur *command
	for {
		typ, p, err := ReadFrame(r)
		if cur != nil && cur.finished() {
			cur = nil
		}
		if err != nil {
			// The host has gone (rtemu stopped or was killed, and the engine
			// closed the exec's stdin): nothing may outlive it. Its exit
			// has nobody to go to. A command whose exit is already on its
			// way has ended as the host saw it: the host may close the
			// stream right after (a pool with no room for it), and what the
			// command left running in the background is the user's.
			if cur != nil && !cur.exitSent.Load() {
				cur.kill()
			}
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "rtemu agent:", err)
			return 1
		}
		switch typ {
		case FrameStart:
			if cur != nil {
				// The host sends Start only after the last Exit; wait for
				// the last command's end to be on its way first.
				cur.wait()
			}
			var s Start
			if err := json.Unmarshal(p, &s); err != nil || len(s.Argv) == 0 {
				_ = w.Write(FrameFailed, []byte("bad start request"))
				continue
			}
			c, err := start(s, base, w)
			if err != nil {
				_ = w.Write(FrameFailed, []byte(err.Error()))
				continue
			}
			cur = c
		case FrameStdin:
			if cur != nil {
				cur.writeStdin(p)
			}
		case FrameStdinClose:
			if cur != nil {
				cur.closeStdin()
			}
		case FrameKill:
			if cur != nil {
				cur.kill()
			}
		case FramePort:
			if raw == nil {
				fmt.Fprintln(os.Stderr, "rtemu agent: a port request on the command stream")
				return 1
			}
			if cur != nil {
				cur.wait()
			}
			relayLinked(raw, r, w, p)
			return 0
		default:
			fmt.Fprintf(os.Stderr, "rtemu agent: unknown frame %q\n", typ)
			return 1
		}
	}
}

// baseEnv is the agent's environment without its own switch: what a Docker
// exec gives a command (the image's and the container's variables, HOSTNAME,
// HOME, PATH).
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvServe+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// mergeEnv adds extra to base, a later value of a name replacing an earlier
// one in place, as the engine merges an exec's Env into the container's.
func mergeEnv(base, extra []string) []string {
	out := append([]string{}, base...)
	at := map[string]int{}
	for i, kv := range out {
		at[envName(kv)] = i
	}
	for _, kv := range extra {
		name := envName(kv)
		if i, ok := at[name]; ok {
			out[i] = kv
			continue
		}
		at[name] = len(out)
		out = append(out, kv)
	}
	return out
}

func envName(kv string) string {
	name, _, _ := strings.Cut(kv, "=")
	return name
}

// defaultPath is runc's PATH for a process whose environment has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds argv[0] on the PATH of the command's own environment, as
// runc does, not on the agent's.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

// command is one running command.
type command struct {
	tag   string
	cmd   *exec.Cmd
	stdin *os.File // the write end of the command's stdin; nil without Start.Stdin
	done  chan struct{}
	// exitSent is set just before FrameExit is written.
	exitSent atomic.Bool
	// killMu is held while kill runs: an exit that a kill caused is
	// written once the kill is done, so what the command left in the
	// background has died by then too.
	killMu sync.Mutex
}

func start(s Start, base []string, w *FrameWriter) (*command, error) {
	env := mergeEnv(base, s.Env)
	path, err := lookPath(s.Argv[0], env)
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(outR, outW)
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: s.Argv, Env: env, Dir: s.Dir, Stdout: outW, Stderr: errW,
		// A session of its own, as runc gives an exec'd process: kill 0
		// and job control reach the command's processes, not the agent.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	var inR, inW *os.File
	if s.Stdin {
		if inR, inW, err = os.Pipe(); err != nil {
			closeAll(outR, outW, errR, errW)
			return nil, err
		}
		cmd.Stdin = inR
	}
	err = cmd.Start()
	closeAll(outW, errW, inR) // the child has its own copies
	if err != nil {
		closeAll(outR, errR, inW)
		return nil, err
	}
	c := &command{tag: s.Tag, cmd: cmd, stdin: inW, done: make(chan struct{})}
	if err := w.Write(FrameStarted, nil); err != nil {
		c.kill()
	}
	go c.run(w, outR, errR)
	return c, nil
}

// run forwards the output until the command has exited and its output has
// drained, then reports the exit code.
func (c *command) run(w *FrameWriter, outR, errR *os.File) {
	defer close(c.done)
	var flowing atomic.Int64
	var readers sync.WaitGroup
	for _, p := range []struct {
		f   *os.File
		typ byte
	}{{outR, FrameStdout}, {errR, FrameStderr}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := p.f.Read(buf)
				if n > 0 {
					flowing.Add(int64(n))
					if w.Write(p.typ, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()

	_ = c.cmd.Wait() // the exit status is in ProcessState
	WaitQuiet(context.Background(), drained, &flowing)
	closeAll(outR, errR) // ends a reader a background child holds open
	<-drained
	c.closeStdin()
	c.killMu.Lock()
	c.exitSent.Store(true)
	c.killMu.Unlock()
	_ = w.Write(FrameExit, ExitPayload(exitCode(c.cmd.ProcessState)))
}

// exitCode is what a shell reports: the status, or 128+N for signal N.
func exitCode(st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

func (c *command) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *command) wait() { <-c.done }

func (c *command) writeStdin(p []byte) {
	if c.stdin == nil {
		return
	}
	// A command that stopped reading makes this wait, and the host waits
	// with it: the stream's own back-pressure. A command that has exited
	// gives EPIPE, and closing the pipe at its end (run) ends a wait for a
	// background child that holds it and never reads.
	_, _ = c.stdin.Write(p)
}

// closeStdin may run while writeStdin waits, from run: an *os.File is safe
// for that, and a second Close is harmless.
func (c *command) closeStdin() {
	if c.stdin != nil {
		_ = c.stdin.Close()
	}
}

// kill ends every process whose environment carries the command's tag: the
// command, its children, and what they left in the background.
func (c *command) kill() {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if c.tag == "" {
		_ = c.cmd.Process.Kill()
		return
	}
	KillTagged(ExecMarker + "=" + c.tag)
}

// KillTagged kills (SIGKILL) every process whose environment holds the
// variable assignment marker, other than the caller, and returns once none
// is left, or after killWait. A signal takes effect only when its process
// next runs, which on a loaded machine can be tens of milliseconds after
// kill(2) returned: until then the process is there, and a dying shell may
// even fork. A process that has died shows an empty environment (a zombie
// too), so it no longer counts.
func KillTagged(marker string) {
	deadline := time.Now().Add(killWait)
	for killTaggedOnce(marker) > 0 && time.Now().Before(deadline) {
		time.Sleep(killPoll)
	}
}

// The bounds of KillTagged's wait: a process that does not die (one in an
// uninterruptible sleep) must not hold the agent up for long.
const (
	killWait = 2 * time.Second
	killPoll = 2 * time.Millisecond
)

// killTaggedOnce signals every tagged process it finds, and says how many.
func killTaggedOnce(marker string) int {
	self := os.Getpid()
	found := 0
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(p), "%d", &pid); err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(p + "/environ")
		if err != nil || !hasVar(env, marker) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			found++
		}
	}
	return found
}

// hasVar reports whether a NUL-separated environment holds the entry
// marker.
func hasVar(env []byte, marker string) bool {
	return bytes.Contains(append([]byte{0}, env...), []byte("\x00"+marker+"\x00"))
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}
