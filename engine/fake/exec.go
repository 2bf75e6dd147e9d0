package fake

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// interpret runs a command the way a tiny /bin/sh would: enough for the
// conformance suite and the service's tests, not a shell. It knows
// `sh -c SCRIPT ARGS…` (with $0…$9), lists joined by newlines, `;`, `&&` and
// `||`, the redirection `>&2`, and the commands echo [-n], exit N, true,
// false, cat (stdin to stdout), sleep N, pwd, hostname, cd DIR, printenv
// NAME, `dd if=/dev/zero of=FILE bs=N[KM] count=N` (charged to the
// container's disk: it fails where the fake enforces a size and the write
// would pass it) and `exec sh -c …`, and the service's exec wrapper by its
// start.
// Anything else is "not found", exit 127.
func interpret(ctx context.Context, spec engine.ExecSpec, hostname string, write func(n int64) bool) (int, error) {
	stdout, stderr := orDiscard(spec.Stdout), orDiscard(spec.Stderr)
	if spec.Tty {
		stderr = stdout
	}
	sh := &shell{ctx: ctx, stdin: spec.Stdin, stdout: stdout, stderr: stderr, env: map[string]string{}, cwd: spec.WorkingDir, hostname: hostname, write: write}
	if sh.cwd == "" {
		sh.cwd = "/"
	}
	for _, kv := range spec.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			sh.env[k] = v
		}
	}
	return sh.run(spec.Cmd)
}

type shell struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	env            map[string]string
	cwd            string
	hostname       string
	exited         bool
	// write charges n bytes to the container's files; false when they do
	// not fit (nothing is written).
	write func(n int64) bool
}

// run runs an argv: a shell with -c, or one command.
func (sh *shell) run(argv []string) (int, error) {
	if len(argv) >= 3 && (argv[0] == "/bin/sh" || argv[0] == "sh" || argv[0] == "/bin/bash") && argv[1] == "-c" {
		return sh.script(argv[2], argv[3:])
	}
	return sh.command(argv)
}

// serviceWrapper is how the service's exec wrapper starts: cd to $1, then
// run the command $2 in that shell (with eval, which this shell lacks).
const serviceWrapper = `cd -- "$1" && __rtemu_cmd=$2 && `

func (sh *shell) script(src string, args []string) (int, error) {
	if strings.HasPrefix(src, serviceWrapper) && len(args) >= 3 { // args: $0, $1, $2
		if code, err := sh.command([]string{"cd", "--", args[1]}); code != 0 || err != nil {
			return code, err
		}
		return sh.script(args[2], nil)
	}
	code := 0
	for _, line := range splitAny(src, "\n;") {
		// a && b || c: run left to right, skipping by the last code.
		op := ""
		for _, part := range splitOps(line) {
			switch part {
			case "&&", "||":
				op = part
				continue
			}
			if op == "&&" && code != 0 || op == "||" && code == 0 {
				continue
			}
			words := sh.expand(tokenize(part), args)
			if len(words) == 0 {
				continue
			}
			var err error
			if code, err = sh.command(words); err != nil {
				return -1, err
			}
			if sh.exited {
				return code, nil
			}
		}
	}
	return code, nil
}

func (sh *shell) expand(words, args []string) []string {
	out := words[:0]
	for _, w := range words {
		if len(w) == 2 && w[0] == '$' && w[1] >= '0' && w[1] <= '9' {
			i := int(w[1] - '0')
			if i < len(args) {
				w = args[i]
			} else {
				w = ""
			}
		} else if w == "$PWD" {
			w = sh.cwd
		} else if strings.HasPrefix(w, "$") {
			w = sh.env[w[1:]]
		}
		out = append(out, w)
	}
	return out
}

func (sh *shell) command(words []string) (int, error) {
	out := sh.stdout
	if n := len(words); n > 1 && (words[n-1] == ">&2" || words[n-1] == "1>&2") {
		out, words = sh.stderr, words[:n-1]
	}
	switch words[0] {
	case "true", ":":
		return 0, nil
	case "false":
		return 1, nil
	case "echo":
		args, nl := words[1:], "\n"
		if len(args) > 0 && args[0] == "-n" {
			args, nl = args[1:], ""
		}
		fmt.Fprint(out, strings.Join(args, " ")+nl)
		return 0, nil
	case "pwd":
		fmt.Fprintln(out, sh.cwd)
		return 0, nil
	case "hostname":
		fmt.Fprintln(out, sh.hostname)
		return 0, nil
	case "cd":
		args := words[1:]
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		if len(args) > 0 {
			if !strings.HasPrefix(args[0], "/") {
				fmt.Fprintf(sh.stderr, "sh: cd: can't cd to %s\n", args[0])
				return 2, nil
			}
			sh.cwd = args[0]
		}
		return 0, nil
	case "printenv":
		if len(words) > 1 {
			v, ok := sh.env[words[1]]
			if !ok {
				return 1, nil
			}
			fmt.Fprintln(out, v)
		}
		return 0, nil
	case "exit":
		sh.exited = true
		if len(words) > 1 {
			n, _ := strconv.Atoi(words[1])
			return n & 0xff, nil
		}
		return 0, nil
	case "cat":
		if sh.stdin == nil {
			return 0, nil
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(out, sh.stdin)
		}()
		select {
		case <-done:
			return 0, nil
		case <-sh.ctx.Done():
			return -1, sh.ctx.Err()
		}
	case "sleep":
		d := time.Second
		if len(words) > 1 {
			f, _ := strconv.ParseFloat(words[1], 64)
			d = time.Duration(f * float64(time.Second))
		}
		select {
		case <-time.After(d):
			return 0, nil
		case <-sh.ctx.Done():
			return -1, sh.ctx.Err()
		}
	case "dd":
		return sh.dd(words[1:]), nil
	case "exec":
		code, err := sh.run(words[1:])
		sh.exited = true
		return code, err
	}
	fmt.Fprintf(sh.stderr, "sh: %s: not found\n", words[0])
	return 127, nil
}

// dd writes bs×count bytes of zeros to of=FILE, or fails as a full disk
// does.
func (sh *shell) dd(args []string) int {
	opt := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			opt[k] = v
		}
	}
	size := func(s string) int64 {
		mult := int64(1)
		switch {
		case strings.HasSuffix(s, "M"):
			s, mult = strings.TrimSuffix(s, "M"), 1<<20
		case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
			s, mult = s[:len(s)-1], 1<<10
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return -1
		}
		return n * mult
	}
	bs, count := size(opt["bs"]), size(opt["count"])
	if opt["if"] != "/dev/zero" || opt["of"] == "" || bs < 0 || count < 0 || opt["bs"] == "" || opt["count"] == "" {
		fmt.Fprintln(sh.stderr, "dd: the fake knows only dd if=/dev/zero of=FILE bs=N count=N")
		return 1
	}
	if sh.write != nil && !sh.write(bs*count) {
		fmt.Fprintf(sh.stderr, "dd: error writing '%s': No space left on device\n", opt["of"])
		return 1
	}
	return 0
}

// tokenize splits a command into words, honouring single and double quotes.
func tokenize(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote, any := false, byte(0), false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, in, any = ch, true, true
		case ch == ' ' || ch == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(ch)
			in, any = true, true
		}
	}
	if in || any && cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

// splitAny splits s at any of seps outside quotes.
func splitAny(s, seps string) []string {
	var out []string
	quote, start := byte(0), 0
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case strings.IndexByte(seps, ch) >= 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// splitOps splits a line at && and || outside quotes, keeping them.
func splitOps(s string) []string {
	var out []string
	quote, start := byte(0), 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case i+1 < len(s) && (ch == '&' && s[i+1] == '&' || ch == '|' && s[i+1] == '|'):
			out = append(out, s[start:i], s[i:i+2])
			start = i + 2
			i++
		}
	}
	return append(out, s[start:])
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
