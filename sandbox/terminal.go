package sandbox

import (
	"context"
	"io"
	"sync"
	"time"
)

// TerminalSessionTTL is how long a browser terminal session may wait for its
// WebSocket: it is one-time and short-lived, as upstream's are.
const TerminalSessionTTL = 60 * time.Second

// LoginShell is the command of a terminal: what sshd would start, the
// user's shell as a login shell in the home directory (bash where the image
// has it, else sh), as the SSH gateway starts it. First it waits (two
// seconds at most) for the terminal to have its size: engines before API
// 1.42 ignore the size given at exec create, so it comes with a resize
// just after the start, and a first command typed ahead (stty size, a
// full-screen program) would otherwise see 0×0.
var LoginShell = []string{"/bin/sh", "-c", `if command -v stty >/dev/null 2>&1; then
  i=0
  while [ $i -lt 40 ]; do
    case $(stty size 2>/dev/null) in ""|"0 0") sleep 0.05; i=$((i + 1)) ;; *) break ;; esac
  done
fi
cd ~ 2>/dev/null || cd /
[ -n "$USER" ] || USER=$(id -un 2>/dev/null || echo root)
LOGNAME=$USER; export USER LOGNAME
if [ -x /bin/bash ]; then SHELL=/bin/bash; else SHELL=/bin/sh; fi; export SHELL
exec "$SHELL" -l`, "rtemu-terminal"}

// TerminalSession is a ticket for one browser terminal on a sandbox.
type TerminalSession struct {
	ID        string // a UUID: the WebSocket's path names it
	SandboxID string
	ExpiresAt time.Time
	used      bool
}

// Why a terminal session cannot be opened; the front door says so when it
// refuses the WebSocket.
var (
	ErrTerminalUnknown = &Error{Kind: KindNotFound, Message: "terminal session not found"}
	ErrTerminalUsed    = &Error{Kind: KindConflict, Message: "terminal session already used (sessions are one-time; mint another)"}
	ErrTerminalExpired = &Error{Kind: KindConflict, Message: "terminal session expired (open it within 60 s of minting it)"}
)

// terminalSessions are the minted sessions. They live in memory only: a
// session lasts a minute, and a restart of rtemu ends every terminal anyway.
type terminalSessions struct {
	mu sync.Mutex
	m  map[string]*TerminalSession
}

func (t *terminalSessions) add(sandboxID string, now time.Time) TerminalSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*TerminalSession{}
	}
	// Forget what can no longer be opened, so the map does not grow.
	for id, ts := range t.m {
		if now.After(ts.ExpiresAt.Add(TerminalSessionTTL)) {
			delete(t.m, id)
		}
	}
	ts := &TerminalSession{ID: newUUID(), SandboxID: sandboxID, ExpiresAt: now.Add(TerminalSessionTTL)}
	t.m[ts.ID] = ts
	return *ts
}

// claim uses a session up: it opens once, before it expires. A used or
// expired session is kept a while, so a late or second try hears why.
func (t *terminalSessions) claim(id string, now time.Time) (TerminalSession, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.m[id]
	switch {
	case !ok:
		return TerminalSession{}, ErrTerminalUnknown
	case ts.used:
		return TerminalSession{}, ErrTerminalUsed
	case now.After(ts.ExpiresAt):
		return TerminalSession{}, ErrTerminalExpired
	}
	ts.used = true
	return *ts, nil
}

func (t *terminalSessions) clear() {
	t.mu.Lock()
	t.m = nil
	t.mu.Unlock()
}

// CreateTerminalSession mints a one-time session for a browser terminal on
// a sandbox that can run one (not failed, broken or destroyed).
func (s *Service) CreateTerminalSession(ctx context.Context, ref string) (TerminalSession, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return TerminalSession{}, err
	}
	switch sb.Status {
	case StatusCreating, StatusRunning, StatusPausing, StatusPaused, StatusResuming:
	default:
		return TerminalSession{}, runnable(sb)
	}
	return s.terms.add(sb.ID, s.now()), nil
}

// OpenTerminalSession uses a session up and returns it.
func (s *Service) OpenTerminalSession(ctx context.Context, id string) (TerminalSession, error) {
	return s.terms.claim(id, s.now())
}

// TerminalIO is a terminal's two ends: the keys typed, the screen's bytes,
// and the window's size (at start, and as it changes).
type TerminalIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Size   WindowSize
	Resize <-chan WindowSize
	Term   string // TERM; "" is xterm-256color
}

// RunTerminal runs a login shell with a terminal in a session's sandbox,
// waiting for a sandbox still starting and waking a paused one, as an SSH
// session does; it returns the shell's exit status. Its feed records the
// terminal's opening and closing.
func (s *Service) RunTerminal(ctx context.Context, ts TerminalSession, tio TerminalIO) (int, error) {
	sb, err := s.usable(ctx, ts.SandboxID, use{by: "terminal", wakeAny: true})
	if err != nil {
		return -1, err
	}
	term := tio.Term
	if term == "" {
		term = "xterm-256color"
	}
	size := tio.Size
	if size.Rows == 0 || size.Cols == 0 {
		size = WindowSize{Rows: 24, Cols: 80}
	}
	// Engines before API 1.42 ignore the size given at exec create: it is
	// given again as the first resize.
	resize := make(chan WindowSize, 4)
	resize <- size
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case w, ok := <-tio.Resize:
				if !ok {
					return
				}
				select {
				case resize <- w:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	start := time.Now()
	s.event(ctx, sb.ID, "terminal.opened", "info", "Browser terminal opened", map[string]any{"sessionId": ts.ID})
	code, err := s.Attach(ctx, sb.ID, AttachSpec{
		Cmd: LoginShell, Env: []string{"TERM=" + term}, Tty: true, Size: &size, Resize: resize,
		Stdin: tio.Stdin, Stdout: tio.Stdout,
	})
	ended := map[string]any{"sessionId": ts.ID, "durationMs": time.Since(start).Milliseconds()}
	switch {
	case ctx.Err() != nil:
		ended["reason"] = "hangup"
	case err != nil:
		ended["reason"], ended["error"] = "error", err.Error()
	default:
		ended["reason"], ended["exitCode"] = "exit", code
	}
	s.event(context.WithoutCancel(ctx), sb.ID, "terminal.closed", "info", "Browser terminal closed", ended)
	return code, err
}
