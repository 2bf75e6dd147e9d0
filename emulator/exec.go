package emulator

import (
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
}

type execResponse struct {
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	ExitCode        int    `json:"exitCode"`
	ExecutionTime   int64  `json:"executionTime"`
	DurationMs      int64  `json:"durationMs"`
	TimedOut        bool   `json:"timedOut"`
	StdoutTruncated bool   `json:"stdoutTruncated"`
	StderrTruncated bool   `json:"stderrTruncated"`
}

func (a *api) exec(c echo.Context) error {
	var req execRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	p := sandbox.ExecParams{Command: req.Command, Cwd: req.Cwd, Env: req.Env}
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
	ms := res.Duration.Milliseconds()
	return reply(c, http.StatusOK, execResponse{
		Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode, ExecutionTime: ms, DurationMs: ms,
		TimedOut: res.TimedOut, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
	})
}
