package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// terminalPath is where a browser terminal session's WebSocket is served
// (upstream's wsPath).
const terminalPath = "/v1/terminal/sessions/"

type terminalSessionJSON struct {
	SessionID string `json:"sessionId"`
	SandboxID string `json:"sandboxId"`
	WSPath    string `json:"wsPath"`
	ExpiresAt string `json:"expiresAt"`
}

func (a *api) createTerminalSession(c echo.Context) error {
	var req struct {
		SandboxID string `json:"sandboxId"`
	}
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	if strings.TrimSpace(req.SandboxID) == "" {
		return badRequest("sandboxId", "is required")
	}
	ts, err := a.svc.CreateTerminalSession(c.Request().Context(), req.SandboxID)
	if err != nil {
		return err
	}
	return reply(c, http.StatusCreated, terminalSessionJSON{SessionID: ts.ID, SandboxID: ts.SandboxID,
		WSPath: terminalPath + ts.ID, ExpiresAt: rfc3339(ts.ExpiresAt)})
}

// The terminal's WebSocket frames (the README's "Browser terminal" has the
// protocol): binary frames carry terminal bytes both ways; text frames
// carry JSON messages.
type terminalMessage struct {
	Type     string `json:"type"`               // client: input, resize; server: exit, error
	Data     string `json:"data,omitempty"`     // input
	Cols     uint   `json:"cols,omitempty"`     // resize
	Rows     uint   `json:"rows,omitempty"`     // resize
	ExitCode *int   `json:"exitCode,omitempty"` // exit
	Message  string `json:"message,omitempty"`  // error
}

// Close codes of the terminal's WebSocket beyond 1000 (the shell exited).
const (
	closeNormal   = 1000
	closeNotFound = 4404 // no such session
	closeRefused  = 4409 // used, expired, or its sandbox cannot run a terminal
	closeInternal = 4500
)

// terminalReadLimit is the largest message a client may send (a paste):
// 32 MiB, as before.
const terminalReadLimit = 32 << 20

// terminalSocket serves a terminal session's WebSocket. It needs no API
// key (a browser's WebSocket cannot send one): the one-time session id,
// minted with a key, is the credential.
func (a *api) terminalSocket(c echo.Context) error {
	if !strings.EqualFold(c.Request().Header.Get("Upgrade"), "websocket") {
		return badRequest("Upgrade", "this is a WebSocket endpoint (open wsPath with a WebSocket client)")
	}
	q := c.Request().URL.Query()
	size := sandbox.WindowSize{Cols: 80, Rows: 24}
	if v, err := strconv.ParseUint(q.Get("cols"), 10, 16); err == nil && v > 0 {
		size.Cols = uint(v)
	}
	if v, err := strconv.ParseUint(q.Get("rows"), 10, 16); err == nil && v > 0 {
		size.Rows = uint(v)
	}
	// The server's deadlines are for requests; a terminal lasts as long as
	// it is used. The connection keeps them after the hijack, so clear them.
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ctx := c.Request().Context()
	// Any origin: the session id, not the page, is what is trusted.
	ws, err := websocket.Accept(c.Response(), c.Request(), &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		// Accept has answered the client already (a bad handshake).
		a.log.Debug("terminal handshake failed", "err", err)
		return nil
	}
	defer ws.CloseNow()
	ws.SetReadLimit(terminalReadLimit)
	a.serveTerminal(ctx, ws, c.Param("id"), size)
	return nil
}

func (a *api) serveTerminal(ctx context.Context, ws *websocket.Conn, id string, size sandbox.WindowSize) {
	ts, err := a.svc.OpenTerminalSession(ctx, id)
	if err != nil {
		a.refuseTerminal(ctx, ws, err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// rtemu shutting down ends open terminals too.
		select {
		case <-a.stopStreams:
			cancel()
		case <-ctx.Done():
		}
	}()
	stdin, keys := io.Pipe()
	// Once the shell is gone nothing reads the keys: a write still waiting
	// fails, and the reader below ends with the connection.
	defer stdin.Close()
	resize := make(chan sandbox.WindowSize, 1)
	go func() {
		// The client's frames, until it closes or goes away.
		defer cancel()
		defer keys.Close()
		for {
			typ, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			switch typ {
			case websocket.MessageBinary:
				if _, err := keys.Write(data); err != nil {
					return
				}
			case websocket.MessageText:
				var m terminalMessage
				if json.Unmarshal(data, &m) != nil {
					continue
				}
				switch m.Type {
				case "input":
					if _, err := keys.Write([]byte(m.Data)); err != nil {
						return
					}
				case "resize":
					if m.Cols > 0 && m.Rows > 0 && m.Cols < 10000 && m.Rows < 10000 {
						select {
						case <-resize:
						default:
						}
						resize <- sandbox.WindowSize{Cols: m.Cols, Rows: m.Rows}
					}
				}
			}
		}
	}()
	out := frameWriter{ctx: ctx, ws: ws}
	code, err := a.svc.RunTerminal(ctx, ts, sandbox.TerminalIO{Stdin: stdin, Stdout: out, Size: size, Resize: resize})
	switch {
	case ctx.Err() != nil:
		// The client went away (or rtemu is stopping): nobody to tell.
		_ = closeSocket(ws, closeNormal, "terminal ended")
	case err != nil:
		a.refuseTerminal(ctx, ws, err)
	default:
		_ = sendMessage(ctx, ws, terminalMessage{Type: "exit", ExitCode: &code})
		_ = closeSocket(ws, closeNormal, fmt.Sprintf("exit %d", code))
	}
}

// refuseTerminal ends a terminal that cannot run: an error message, then a
// close whose code and reason say why.
func (a *api) refuseTerminal(ctx context.Context, ws *websocket.Conn, err error) {
	code := closeInternal
	var se *sandbox.Error
	if errors.As(err, &se) {
		switch se.Kind {
		case sandbox.KindNotFound:
			code = closeNotFound
		case sandbox.KindConflict, sandbox.KindInvalid:
			code = closeRefused
		}
	} else {
		a.log.Warn("terminal failed", "err", err)
	}
	msg := err.Error()
	if se != nil {
		msg = restText(se)
	}
	if code == closeInternal {
		msg = "internal error (rtemu's log has the cause)"
	}
	_ = sendMessage(ctx, ws, terminalMessage{Type: "error", Message: msg})
	_ = closeSocket(ws, code, msg)
}

func sendMessage(ctx context.Context, ws *websocket.Conn, m terminalMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, b)
}

// closeSocket closes the connection with a code and reason (cut to the 123
// bytes a close frame holds, on a character boundary), waiting a few
// seconds at most for the client's answer.
func closeSocket(ws *websocket.Conn, code int, reason string) error {
	for len(reason) > 123 {
		_, n := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-n]
	}
	return ws.Close(websocket.StatusCode(code), reason)
}

// frameWriter sends what the terminal writes as binary frames. Its context
// is the terminal's: when the client is gone a blocked write ends.
type frameWriter struct {
	ctx context.Context
	ws  *websocket.Conn
}

func (w frameWriter) Write(p []byte) (int, error) {
	if err := w.ws.Write(w.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
