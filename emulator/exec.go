package emulator

import (
	"bufio"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

type execRequest struct {
	Command string            `json:"command"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env"`
	Timeout *int64            `json:"timeout"` // milliseconds
	Secrets []string          `json:"secrets"` // names; their values join env
}

// execResponse is the answer to an exec but for its output, which
// replyExec writes around it, a piece at a time.
type execResponse struct {
	ExitCode        int   `json:"exitCode"`
	ExecutionTime   int64 `json:"executionTime"`
	DurationMs      int64 `json:"durationMs"`
	TimedOut        bool  `json:"timedOut"`
	StdoutTruncated bool  `json:"stdoutTruncated"`
	StderrTruncated bool  `json:"stderrTruncated"`
}

func (a *api) exec(c echo.Context) error {
	var req execRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	p := sandbox.ExecParams{Command: req.Command, Cwd: req.Cwd, Env: req.Env, Secrets: req.Secrets}
	if req.Timeout != nil {
		if *req.Timeout < 1 || *req.Timeout > sandbox.MaxExecTimeout.Milliseconds() {
			return badRequest("timeout", "must be between 1 and 3600000 milliseconds")
		}
		p.Timeout = time.Duration(*req.Timeout) * time.Millisecond
	}
	if wantsEventStream(c.Request()) {
		return a.execStream(c, p)
	}
	res, err := a.svc.Exec(c.Request().Context(), c.Param("id"), p)
	if err != nil {
		return err
	}
	defer res.Close()
	return replyExec(c, res)
}

// replyExec writes an exec's answer in the contract's envelope, its output
// streamed from where the service kept it (memory or a spill file): the
// answer's size is bounded by the output caps, its memory by one piece.
func replyExec(c echo.Context, res sandbox.ExecResult) error {
	ms := res.Duration.Milliseconds()
	rest, err := json.Marshal(execResponse{
		ExitCode: res.ExitCode, ExecutionTime: ms, DurationMs: ms, TimedOut: res.TimedOut,
		StdoutTruncated: res.Stdout.Truncated(), StderrTruncated: res.Stderr.Truncated(),
	})
	if err != nil {
		return err
	}
	m, err := json.Marshal(meta{RequestID: requestIDOf(c)})
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(`{"data":{"stdout":`)
	if err := res.Stdout.WriteJSON(bw); err != nil {
		return err
	}
	_, _ = bw.WriteString(`,"stderr":`)
	if err := res.Stderr.WriteJSON(bw); err != nil {
		return err
	}
	_, _ = bw.WriteString(",")
	_, _ = bw.Write(rest[1:]) // the other fields, and the data object's }
	_, _ = bw.WriteString(`,"meta":`)
	_, _ = bw.Write(m)
	_, _ = bw.WriteString("}\n")
	return bw.Flush()
}
