package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/netguard"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/state"
)

// envelope is every successful answer: {"data": …, "meta": {"requestId": …}}.
type envelope struct {
	Data any  `json:"data"`
	Meta meta `json:"meta"`
}

type meta struct {
	RequestID string `json:"requestId"`
}

// pageMeta is the meta of a page: the cursor is null, never missing, on the
// last page, as the hosted docs show it.
type pageMeta struct {
	RequestID  string  `json:"requestId"`
	HasMore    bool    `json:"hasMore"`
	NextCursor *string `json:"nextCursor"`
}

// listEnvelope carries the pagination both where the hosted docs put it
// (meta) and where its OpenAPI document does (top level).
type listEnvelope struct {
	Data       any      `json:"data"`
	Meta       pageMeta `json:"meta"`
	HasMore    bool     `json:"hasMore"`
	NextCursor *string  `json:"nextCursor"`
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string        `json:"code"`
	Message   string        `json:"message"`
	RequestID string        `json:"requestId"`
	Details   []fieldDetail `json:"details,omitempty"`
}

type fieldDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// apiError is an error the HTTP layer itself finds (auth, body, media type).
type apiError struct {
	status  int
	code    string
	message string
	details []fieldDetail
}

func (e *apiError) Error() string { return e.message }

func badRequest(field, msg string) error {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", message: "invalid request",
		details: []fieldDetail{{Field: field, Message: msg}}}
}

func reply(c echo.Context, status int, data any) error {
	return c.JSON(status, envelope{Data: data, Meta: meta{RequestID: requestIDOf(c)}})
}

func replyList(c echo.Context, data any, hasMore bool, next string) error {
	var nc *string
	if next != "" {
		nc = &next
	}
	return c.JSON(http.StatusOK, listEnvelope{
		Data: data, HasMore: hasMore, NextCursor: nc,
		Meta: pageMeta{RequestID: requestIDOf(c), HasMore: hasMore, NextCursor: nc},
	})
}

var kindStatus = map[sandbox.Kind]struct {
	status int
	code   string
}{
	sandbox.KindInvalid:     {http.StatusBadRequest, "bad_request"},
	sandbox.KindNotFound:    {http.StatusNotFound, "not_found"},
	sandbox.KindConflict:    {http.StatusConflict, "conflict"},
	sandbox.KindUnavailable: {http.StatusServiceUnavailable, "docker_unavailable"},
	sandbox.KindForbidden:   {http.StatusForbidden, "forbidden"},
}

// code is the contract's error code of a kind of failure: an engine that
// does not answer is docker_unavailable on Docker, engine_unavailable on
// any other engine.
func (a *api) code(k sandbox.Kind) string {
	if k == sandbox.KindUnavailable && a.engineKind != "docker" {
		return "engine_unavailable"
	}
	return kindStatus[k].code
}

// handleError is the one place where errors become the contract's envelope.
func (a *api) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var (
		out    = errorDetail{RequestID: requestIDOf(c)}
		status int
		ae     *apiError
		se     *sandbox.Error
		he     *echo.HTTPError
		mbe    *http.MaxBytesError
		fe     *state.FormatError
	)
	switch {
	case errors.As(err, &ae):
		status, out.Code, out.Message, out.Details = ae.status, ae.code, ae.message, ae.details
	case errors.As(err, &fe):
		status, out.Code, out.Message = http.StatusBadRequest, "bad_request", fe.Msg
		out.Details = []fieldDetail{{Field: "archive", Message: fe.Kind}}
	case errors.As(err, &se):
		m := kindStatus[se.Kind]
		status, out.Code, out.Message = m.status, a.code(se.Kind), restMessage(se)
		if se.Code != "" {
			out.Code = se.Code
		}
		out.Details = restDetails(se)
		if se.Kind == sandbox.KindUnavailable {
			a.log.Warn("engine unavailable", "engine", a.engineKind, "requestId", out.RequestID, "err", err)
		}
	case errors.Is(err, netguard.ErrBodyTimeout):
		status, out.Code, out.Message = http.StatusRequestTimeout, "bad_request",
			"the request body did not arrive in time (60 s, plus a second for every 64 KiB)"
	case errors.As(err, &mbe):
		status, out.Code, out.Message = http.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("request body is larger than the limit of %d MiB", mbe.Limit>>20)
	case errors.As(err, &he):
		status = he.Code
		switch he.Code {
		case http.StatusNotFound:
			out.Code, out.Message = "not_found", "no such endpoint: "+c.Request().Method+" "+c.Request().URL.Path
		case http.StatusMethodNotAllowed:
			out.Code, out.Message = "method_not_allowed", c.Request().Method+" is not allowed on "+c.Request().URL.Path
		case http.StatusRequestEntityTooLarge:
			out.Code, out.Message = "payload_too_large", "request body too large"
		default:
			out.Code, out.Message = "bad_request", http.StatusText(he.Code)
		}
	case errors.Is(err, net.ErrClosed):
		// The connection was closed under a request still being read (a
		// slow client closed for room by the connection budget): nobody
		// reads an answer.
		return
	case clientGone(c) && errors.Is(err, context.Canceled):
		// The client went away mid-request: nobody reads an answer, and it
		// is no error of rtemu's.
		return
	case a.svc != nil && errors.As(a.svc.Explain(err), &se):
		// An unexpected failure while the engine does not answer: the
		// engine's outage is the cause (never a 500).
		status, out.Code, out.Message = http.StatusServiceUnavailable, a.code(sandbox.KindUnavailable), se.Message
		a.log.Warn("engine unavailable", "engine", a.engineKind, "requestId", out.RequestID, "err", err)
	default:
		status, out.Code, out.Message = http.StatusInternalServerError, "internal_error",
			"internal error (request "+out.RequestID+"; rtemu's log has the cause)"
		a.log.Error("internal error", "requestId", out.RequestID, "method", c.Request().Method,
			"path", c.Request().URL.Path, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, errorBody{Error: out})
}

const requestIDKey = "rtemu.requestId"

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// requestID gives every request an id, returned in X-Request-Id and in the
// envelope.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		b := make([]byte, 10)
		_, _ = rand.Read(b)
		id := "req_" + hex.EncodeToString(b)
		c.Set(requestIDKey, id)
		c.Response().Header().Set("X-Request-Id", id)
		return next(c)
	}
}

// logRequests writes one line a request. It never logs headers or bodies:
// they carry keys and passwords.
func (a *api) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		a.log.Info("request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", c.Response().Status, "ms", time.Since(start).Milliseconds(), "requestId", requestIDOf(c))
		return nil
	}
}

// remedies words the service's remedies in this API's terms: the route
// that does it.
var remedies = map[sandbox.Remedy]func(subject string) string{
	sandbox.RemedyResume:          func(id string) string { return " (POST /v1/sandboxes/" + id + "/resume)" },
	sandbox.RemedyListProjects:    func(string) string { return " (GET /v1/projects lists them)" },
	sandbox.RemedyRegisterSSHKey:  func(string) string { return " (register it with POST /v1/ssh-keys, or give the public key itself)" },
	sandbox.RemedyCreateWorkspace: func(string) string { return " (create it with POST /v1/workspaces)" },
}

// restMessage is a service error's message with its remedy in REST terms.
func restMessage(se *sandbox.Error) string {
	if w := remedies[se.Remedy]; w != nil {
		return se.Message + w(se.Subject)
	}
	return se.Message
}

// restDetails are a service error's field errors with their remedies in
// REST terms.
func restDetails(se *sandbox.Error) []fieldDetail {
	var out []fieldDetail
	for _, d := range se.Details {
		msg := d.Message
		if w := remedies[d.Remedy]; w != nil {
			msg += w(se.Subject)
		}
		out = append(out, fieldDetail{Field: d.Field, Message: msg})
	}
	return out
}

// restText is a service error as one line (its Error()), in REST terms.
func restText(se *sandbox.Error) string {
	var b strings.Builder
	b.WriteString(restMessage(se))
	for _, d := range restDetails(se) {
		fmt.Fprintf(&b, "; %s: %s", d.Field, d.Message)
	}
	if se.Err != nil {
		fmt.Fprintf(&b, ": %v", se.Err)
	}
	return b.String()
}
