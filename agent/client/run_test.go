//go:build linux

package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/agent"
	"github.com/rtemu-dev/rtemu/agent/client"
)

// pipeConn is an agent served in this process on pipes, as an engine's
// stream would carry it.
type pipeConn struct {
	r     *bufio.Reader
	w     *agent.FrameWriter
	close func()
}

func (c *pipeConn) Reader() *bufio.Reader      { return c.r }
func (c *pipeConn) Writer() *agent.FrameWriter { return c.w }
func (c *pipeConn) Close()                     { c.close() }

func newAgent(t *testing.T) *pipeConn {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() { agent.Serve(inR, outW); outW.Close() }()
	var once sync.Once
	c := &pipeConn{r: bufio.NewReader(outR), w: agent.NewFrameWriter(inW),
		close: func() { once.Do(func() { inW.Close(); outR.Close() }) }}
	t.Cleanup(c.Close)
	if typ, p, err := agent.ReadFrame(c.r); err != nil || typ != agent.FrameReady || string(p) != agent.Version {
		t.Fatalf("agent's first frame %q %q %v", typ, p, err)
	}
	return c
}

// engine counts what the run asked of it.
type engine struct {
	mu      sync.Mutex
	killed  []string
	running bool
}

func (e *engine) KillTagged(name, tag string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.killed = append(e.killed, tag)
}

func (e *engine) Running(context.Context, string) (bool, error) { return e.running, nil }

// Run on an agent: output, exit codes, stdin, a command the agent cannot
// start, a caller giving up; and whether the agent is kept.
func TestRun(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		cmd      client.Command
		timeout  time.Duration
		res      client.Result
		code     int
		stdout   string
		stderr   string
		keep     bool
		canceled bool
		closed   bool // the stream is broken before the run
	}{
		{name: "output and code", cmd: client.Command{Argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}},
			res: client.Ran, code: 3, stdout: "out\n", stderr: "err\n", keep: true},
		{name: "env and dir", cmd: client.Command{Argv: []string{"/bin/sh", "-c", "echo $A; pwd"}, Env: []string{"A=b"}, Dir: "/tmp"},
			res: client.Ran, stdout: "b\n/tmp\n", keep: true},
		{name: "stdin", cmd: client.Command{Argv: []string{"cat"}, Stdin: strings.NewReader("fed\n")},
			res: client.Ran, stdout: "fed\n", keep: true},
		{name: "refused", cmd: client.Command{Argv: []string{"/nonexistent/rtemu-no-such-command"}}, res: client.Refused, code: -1},
		{name: "given up", cmd: client.Command{Argv: []string{"sleep", "30"}}, timeout: 200 * time.Millisecond,
			res: client.Ran, code: -1, canceled: true},
		{name: "broken stream", cmd: client.Command{Argv: []string{"true"}}, res: client.Broken, code: -1, closed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, e := newAgent(t), &engine{running: true}
			if tc.closed {
				c.Close()
			}
			var out, errb bytes.Buffer
			tc.cmd.Stdout, tc.cmd.Stderr = &out, &errb
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			res, code, err, keep := client.Run(ctx, e, "sandbox", c, tc.cmd)
			if res != tc.res || code != tc.code || keep != tc.keep || out.String() != tc.stdout || errb.String() != tc.stderr {
				t.Fatalf("Run = %v, %d, %v, keep %v, out %q, err %q; want %v, %d, keep %v, out %q, err %q",
					res, code, err, keep, out.String(), errb.String(), tc.res, tc.code, tc.keep, tc.stdout, tc.stderr)
			}
			if tc.canceled != errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v; want the context's: %v", err, tc.canceled)
			}
			if tc.canceled && time.Since(start) > 10*time.Second {
				t.Fatalf("a command given up on took %v to end", time.Since(start))
			}
			if keep {
				// A kept agent runs the next command.
				if res, code, err, _ := client.Run(context.Background(), e, "sandbox", c, client.Command{Argv: []string{"true"}}); res != client.Ran || code != 0 || err != nil {
					t.Fatalf("the next command on a kept agent: %v %d %v", res, code, err)
				}
			}
		})
	}
}
