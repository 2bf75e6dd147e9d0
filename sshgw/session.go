package sshgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// loginScript starts what sshd would: the user's shell as a login shell in
// the home directory, or `shell -c COMMAND` when a command was given ($1).
// bash where the image has it (as root's login shell on Ubuntu), else sh.
// The login name (the sandbox's id or name) is made a name of root's in
// /etc/passwd first (aliasLogin).
const loginScript = `cd ~ 2>/dev/null || cd /
` + aliasLogin + `
[ -n "$USER" ] || USER=$(id -un 2>/dev/null || echo root)
LOGNAME=$USER; export USER LOGNAME
if [ -x /bin/bash ]; then SHELL=/bin/bash; else SHELL=/bin/sh; fi; export SHELL
[ $# -eq 0 ] && exec "$SHELL" -l
exec "$SHELL" -c "$1"`

// aliasLogin makes the SSH login name ($RTEMU_SSH_LOGIN: the sandbox's id
// or name, with which the client logged in as root) a second name of root
// in /etc/passwd, home and all, unless the container has that name
// already: a client that expands ~<login> in the shell (Ansible does, for
// its temporary files) then gets root's home, not the text "~sandbox-…".
// No process is started for it (the loop reads the file in the shell); an
// image whose /etc/passwd cannot be written keeps it as it is.
const aliasLogin = `u=$RTEMU_SSH_LOGIN; unset RTEMU_SSH_LOGIN
case $u in ''|-*|*[!A-Za-z0-9._-]*) ;; *)
  k=; while IFS=: read -r n _; do [ "$n" = "$u" ] && { k=1; break; }; done </etc/passwd 2>/dev/null
  [ -n "$k" ] || printf '%s:x:0:0:rtemu SSH login (root):%s:/bin/sh\n' "$u" "$(pwd)" >>/etc/passwd 2>/dev/null;;
esac
unset u k n`

// exitGatewayError is the status a session ends with when the gateway, not
// the command, failed (as ssh itself exits 255 on its own errors).
const exitGatewayError = 255

const (
	maxClientEnv      = 64
	maxClientEnvValue = 32 << 10
)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Wire formats of the session requests (RFC 4254 §6).
type (
	ptyRequestMsg struct {
		Term                   string
		Columns, Rows          uint32
		WidthPixels, HeightPix uint32
		Modes                  string
	}
	windowChangeMsg struct {
		Columns, Rows          uint32
		WidthPixels, HeightPix uint32
	}
	envMsg       struct{ Name, Value string }
	execMsg      struct{ Command string }
	subsystemMsg struct{ Name string }
	exitStatus   struct{ Status uint32 }
)

// session is one "session" channel: a shell, a command or the SFTP
// subsystem, in the sandbox the connection logged in to.
type session struct {
	g         *Gateway
	conn      *gossh.ServerConn
	ch        gossh.Channel
	sandboxID string

	ended  <-chan struct{} // closed when the session ends
	env    []string
	term   string
	size   *sandbox.WindowSize // non-nil once a PTY was asked for
	resize chan sandbox.WindowSize
}

func (g *Gateway) handleSession(_ *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	id, ok := sandboxOf(ctx, conn)
	if !ok {
		_ = newChan.Reject(gossh.Prohibited, "not logged in to a sandbox")
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		return
	}
	s := &session{g: g, conn: conn, ch: ch, sandboxID: id, resize: make(chan sandbox.WindowSize, 1)}
	s.serve(ctx, reqs)
}

// serve answers the channel's requests until the client closes the channel
// or the connection drops; either is a hang-up, which ends the command.
func (s *session) serve(ctx context.Context, reqs <-chan *gossh.Request) {
	runCtx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	s.ended = runCtx.Done()
	var done chan struct{}
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			var m ptyRequestMsg
			if done == nil && s.size == nil && gossh.Unmarshal(req.Payload, &m) == nil {
				s.term, ok = m.Term, true
				s.size = &sandbox.WindowSize{Rows: uint(m.Rows), Cols: uint(m.Columns)}
			}
		case "window-change":
			var m windowChangeMsg
			if s.size != nil && gossh.Unmarshal(req.Payload, &m) == nil {
				ok = true
				w := sandbox.WindowSize{Rows: uint(m.Rows), Cols: uint(m.Columns)}
				if done == nil {
					s.size = &w // not started yet: the size to start with
				} else {
					s.pushResize(w)
				}
			}
		case "env":
			var m envMsg
			if done == nil && gossh.Unmarshal(req.Payload, &m) == nil {
				ok = s.setEnv(m.Name, m.Value)
			}
		case "shell", "exec", "subsystem":
			kind, command, valid := parseStart(req)
			if done != nil || !valid {
				break
			}
			done = make(chan struct{})
			// Everything the requests set so far is fixed from here on;
			// the command runs with a copy of it.
			spec, pty := s.attachSpec(command, kind == "exec"), s.size != nil
			// The reply goes out before the command starts: a command
			// that ends at once closes the channel, and a reply after
			// that is lost (the client's exec then fails with EOF).
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
			go func() {
				defer close(done)
				s.run(runCtx, kind, command, spec, pty)
			}()
			continue
		}
		// signal, break, auth-agent-req, x11-req and the rest are refused:
		// the engine has no way to signal an exec'd process.
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	hangUp()
	if done != nil {
		<-done
	}
}

// parseStart reads a shell, exec or subsystem request: what to run. An
// empty exec command runs `sh -c ""`, as sshd does; sftp is the one
// subsystem.
func parseStart(req *gossh.Request) (kind, command string, ok bool) {
	switch req.Type {
	case "shell":
		return "shell", "", true
	case "exec":
		var m execMsg
		if gossh.Unmarshal(req.Payload, &m) != nil {
			return "", "", false
		}
		return "exec", m.Command, true
	case "subsystem":
		var m subsystemMsg
		if gossh.Unmarshal(req.Payload, &m) != nil || m.Name != "sftp" {
			return "", "", false
		}
		return "sftp", "", true
	}
	return "", "", false
}

// pushResize hands the newest size to the command, dropping one it has not
// taken yet: only the latest size matters.
func (s *session) pushResize(w sandbox.WindowSize) {
	select {
	case s.resize <- w:
	default:
		select {
		case <-s.resize:
		default:
		}
		s.resize <- w
	}
}

func (s *session) setEnv(name, value string) bool {
	// RTEMU_* is reserved: the engine driver tags processes with it.
	if !envNamePattern.MatchString(name) || strings.HasPrefix(name, "RTEMU_") ||
		len(value) > maxClientEnvValue || strings.IndexByte(value, 0) >= 0 || len(s.env) >= maxClientEnv {
		return false
	}
	s.env = append(s.env, name+"="+value)
	return true
}

// run starts the shell, command or SFTP server, and ends the channel with
// the exit status once all output is written. After a hang-up nothing is
// sent: the client is gone.
func (s *session) run(ctx context.Context, kind, command string, spec sandbox.AttachSpec, pty bool) {
	start := time.Now()
	attrs := map[string]any{"user": s.conn.User(), "remoteAddr": s.conn.RemoteAddr().String(),
		"kind": kind, "pty": pty}
	if command != "" {
		attrs["command"] = truncate(command, 200)
	}
	sb, err := s.g.svc.EnsureRunning(ctx, s.sandboxID)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(err, pty)
		}
		return
	}
	defer s.g.svc.BeginActivity(ctx, sb.ID)()
	s.g.svc.RecordEvent(ctx, sb.ID, "ssh.connected", "info", "SSH session opened", attrs)

	var code int
	if kind == "sftp" {
		err = s.serveSFTP(ctx, sb.ID)
	} else {
		code, err = s.g.svc.Attach(ctx, sb.ID, spec)
	}
	ended := map[string]any{}
	for k, v := range attrs {
		ended[k] = v
	}
	ended["durationMs"] = time.Since(start).Milliseconds()
	switch {
	case ctx.Err() != nil:
		// The process tree was killed with the session.
		ended["reason"] = "hangup"
	case err != nil:
		ended["reason"], ended["error"] = "error", err.Error()
	default:
		ended["reason"], ended["exitCode"] = "exit", code
	}
	s.g.svc.RecordEvent(detach(ctx), sb.ID, "ssh.disconnected", "info", "SSH session closed", ended)
	// One line a session, like the API's one line a request; never the
	// command's text or environment, which may hold secrets.
	s.g.log.Info("ssh session", "sandbox", sb.ID, "kind", kind, "pty", pty, "reason", ended["reason"],
		"exitCode", ended["exitCode"], "ms", ended["durationMs"])
	switch {
	case ctx.Err() != nil:
	case err != nil:
		s.fail(err, pty)
	default:
		s.exit(code)
	}
}

func (s *session) attachSpec(command string, isExec bool) sandbox.AttachSpec {
	spec := sandbox.AttachSpec{
		Cmd:    []string{"/bin/sh", "-c", loginScript, "rtemu-ssh"},
		Stdin:  s.ch,
		Stdout: s.ch,
		Stderr: s.ch.Stderr(),
	}
	if isExec {
		spec.Cmd = append(spec.Cmd, command)
	}
	local, _ := s.conn.LocalAddr().(*net.TCPAddr)
	remote, _ := s.conn.RemoteAddr().(*net.TCPAddr)
	if local != nil && remote != nil {
		spec.Env = append(spec.Env,
			fmt.Sprintf("SSH_CONNECTION=%s %d %s %d", remote.IP, remote.Port, local.IP, local.Port),
			fmt.Sprintf("SSH_CLIENT=%s %d %d", remote.IP, remote.Port, local.Port))
	}
	if s.size != nil {
		spec.Tty, spec.Resize = true, s.resize
		// The engine ends a TTY exec's output when its stdin closes, so
		// `ssh -tt host tty </dev/null` would print nothing; sshd keeps a
		// PTY session's output flowing after the client's EOF, and so does
		// this: the client's EOF is held back until the session ends.
		spec.Stdin = holdEOF{r: s.ch, done: s.ended}
		size := *s.size
		if size.Rows == 0 || size.Cols == 0 {
			// ssh -tt without a local terminal asks for 0x0.
			size = sandbox.WindowSize{Rows: 24, Cols: 80}
		}
		spec.Size = &size
		// Engines before API 1.42 ignore the size given at exec create;
		// a resize right after start sets it there too.
		s.pushResize(size)
		term := s.term
		if term == "" {
			term = "xterm"
		}
		spec.Env = append(spec.Env, "TERM="+term)
	}
	spec.Env = append(spec.Env, s.env...)
	spec.Env = append(spec.Env, "RTEMU_SSH_LOGIN="+s.conn.User()) // last: the client's env cannot change it
	return spec
}

// exit ends the channel the way sshd does: EOF, exit-status, close.
func (s *session) exit(code int) {
	if code < 0 || code > 255 {
		code = exitGatewayError
	}
	_ = s.ch.CloseWrite()
	_, _ = s.ch.SendRequest("exit-status", false, gossh.Marshal(exitStatus{uint32(code)}))
	_ = s.ch.Close()
}

// fail tells the client why the gateway could not run its session.
func (s *session) fail(err error, pty bool) {
	msg := err.Error()
	var se *sandbox.Error
	if !errors.As(err, &se) {
		s.g.log.Warn("ssh session failed", "sandbox", s.sandboxID, "err", err)
		msg = "internal error (rtemu's log has the cause)"
	}
	nl := "\n"
	if pty {
		nl = "\r\n"
	}
	_, _ = io.WriteString(s.ch.Stderr(), "rtemu: "+msg+nl)
	s.exit(exitGatewayError)
}

// holdEOF reads r, but answers its EOF only once done is closed.
type holdEOF struct {
	r    io.Reader
	done <-chan struct{}
}

func (h holdEOF) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if errors.Is(err, io.EOF) {
		<-h.done
	}
	return n, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
