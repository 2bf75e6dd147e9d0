package emulator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// gate lets /_emulator/reset run alone: every API request holds it shared;
// reset ends the requests in flight (their contexts are cancelled), then
// holds it exclusively.
type gate struct {
	mu     sync.RWMutex
	genMu  sync.Mutex
	gen    context.Context
	cancel context.CancelFunc
}

func newGate() *gate {
	g := &gate{}
	g.gen, g.cancel = context.WithCancel(context.Background())
	return g
}

func (g *gate) shared(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		g.genMu.Lock()
		gen := g.gen
		g.genMu.Unlock()
		g.mu.RLock()
		defer g.mu.RUnlock()
		client := c.Request().Context()
		c.Set(clientCtxKey, client)
		ctx, cancel := context.WithCancel(client)
		defer cancel()
		stop := context.AfterFunc(gen, cancel)
		defer stop()
		c.SetRequest(c.Request().WithContext(ctx))
		err := next(c)
		if err != nil && gen.Err() != nil && client.Err() == nil && errors.Is(err, context.Canceled) {
			return &apiError{status: http.StatusConflict, code: "conflict",
				message: "the request was ended by POST /_emulator/reset (or a state save or load)"}
		}
		return err
	}
}

// quiet runs fn alone like exclusive, but first lets the requests in flight
// end on their own for up to grace (new ones wait meanwhile); those still
// running then are ended as a reset ends them.
func (g *gate) quiet(grace time.Duration, fn func() error) error {
	g.genMu.Lock()
	old := g.cancel
	g.gen, g.cancel = context.WithCancel(context.Background())
	g.genMu.Unlock()
	t := time.AfterFunc(grace, old)
	g.mu.Lock()
	t.Stop()
	old()
	defer g.mu.Unlock()
	return fn()
}

func (g *gate) exclusive(fn func() error) error {
	g.genMu.Lock()
	old := g.cancel
	g.gen, g.cancel = context.WithCancel(context.Background())
	g.genMu.Unlock()
	old()
	g.mu.Lock()
	defer g.mu.Unlock()
	return fn()
}

const operationKey = "rtemu.operation"

// clientCtxKey holds the request's own context, before the gate tied it to
// the reset generation: it ends only when the client goes away.
const clientCtxKey = "rtemu.clientCtx"

// clientGone says whether the client has gone away from this request.
func clientGone(c echo.Context) bool {
	if ctx, ok := c.Get(clientCtxKey).(context.Context); ok {
		return ctx.Err() != nil
	}
	return c.Request().Context().Err() != nil
}

func operation(op string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(operationKey, op)
			return next(c)
		}
	}
}

var statusCodes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
	413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited", 503: "docker_unavailable",
}

// injectFaults delays or fails an operation as the armed faults say.
func (a *api) injectFaults(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		op, _ := c.Get(operationKey).(string)
		if f, ok := a.svc.TakeFault(op, sandbox.FaultLatency); ok {
			sandbox.Delay(c.Request().Context(), f)
		}
		if f, ok := a.svc.TakeFault(op, sandbox.FaultError); ok {
			ans, _ := f.Answer.(FaultAnswer)
			code := ans.Code
			if code == "" {
				if code = statusCodes[ans.Status]; code == "" {
					code = "internal_error"
				}
			}
			msg := f.Message
			if msg == "" {
				msg = "injected fault " + f.ID + " for " + op
			}
			return &apiError{status: ans.Status, code: code, message: msg}
		}
		return next(c)
	}
}

func (a *api) versionHeader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("X-Rtemu-Version", a.version)
		return next(c)
	}
}

func (a *api) reset(c echo.Context) error {
	var body resetBody
	if err := decodeJSON(c, &body, true); err != nil {
		return err
	}
	switch body.To {
	case "", "empty", "seed":
	default:
		return &apiError{status: http.StatusBadRequest, code: "bad_request", message: "invalid request",
			details: []fieldDetail{{Field: "to", Message: `must be "empty" (the default) or "seed"`}}}
	}
	if body.To == "seed" && !a.svc.HasSeed() {
		return &apiError{status: http.StatusConflict, code: "conflict",
			message: "no seed is loaded: start rtemu with --seed FILE (or load one with rtemu state load FILE) to reset to it"}
	}
	var n int
	err := a.gate.exclusive(func() error {
		var err error
		n, err = a.resetTo(c.Request().Context(), body.To)
		return err
	})
	if err != nil {
		return err
	}
	if body.To == "seed" {
		return reply(c, http.StatusOK, map[string]any{"reset": true, "to": "seed", "sandboxesRestored": n})
	}
	return reply(c, http.StatusOK, map[string]any{"reset": true, "sandboxesRemoved": n})
}

// faultJSON is a fault on the wire.
type faultJSON struct {
	ID        string `json:"id"`
	Operation string `json:"operation"`
	Mode      string `json:"mode"`
	Status    int    `json:"status,omitempty"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	Ms        int    `json:"ms,omitempty"`
	Count     int    `json:"count"`
	Fired     int    `json:"fired"`
}

// FaultAnswer is what an error fault answers over REST: the API's own words,
// which the service keeps opaque (sandbox.Fault.Answer).
type FaultAnswer struct {
	Status int
	Code   string
}

func toFaultJSON(f sandbox.Fault) faultJSON {
	ans, _ := f.Answer.(FaultAnswer)
	return faultJSON{ID: f.ID, Operation: f.Operation, Mode: f.Mode, Status: ans.Status, Code: ans.Code,
		Message: f.Message, Ms: f.Ms, Count: f.Count, Fired: f.Fired}
}

func (a *api) listFaults(c echo.Context) error {
	out := []faultJSON{}
	for _, f := range a.svc.Faults() {
		out = append(out, toFaultJSON(f))
	}
	return reply(c, http.StatusOK, out)
}

func (a *api) armFault(c echo.Context) error {
	var f faultJSON
	if err := decodeJSON(c, &f, false); err != nil {
		return err
	}
	// The operations are this API's, and so are the status and code an
	// error fault answers with.
	var wrong []sandbox.FieldError
	known := f.Operation == sandbox.AnyOperation
	for _, op := range a.operations() {
		known = known || op == f.Operation
	}
	if !known {
		wrong = append(wrong, sandbox.FieldError{Field: "operation",
			Message: fmt.Sprintf("unknown operation %q (GET /_emulator/operations lists them; * is every one)", f.Operation)})
	}
	var ans any
	if f.Mode == sandbox.FaultError {
		if f.Status == 0 {
			f.Status = http.StatusInternalServerError
		}
		if f.Status < 400 || f.Status > 599 {
			wrong = append(wrong, sandbox.FieldError{Field: "status", Message: "must be an HTTP error status (400–599)"})
		}
		ans = FaultAnswer{Status: f.Status, Code: f.Code}
	}
	armed, err := a.svc.ArmFault(sandbox.Fault{Operation: f.Operation, Mode: f.Mode, Answer: ans, Message: f.Message,
		Ms: f.Ms, Count: f.Count}, wrong...)
	if err != nil {
		return err
	}
	return reply(c, http.StatusCreated, toFaultJSON(armed))
}

func (a *api) clearFaults(c echo.Context) error {
	a.svc.ClearFaults()
	return reply(c, http.StatusOK, map[string]any{"cleared": true})
}

func (a *api) listOperations(c echo.Context) error {
	return reply(c, http.StatusOK, a.operations())
}

func (a *api) expireIdle(c echo.Context) error {
	sb, err := a.svc.ExpireIdle(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, a.toSandboxJSON(c.Request().Context(), sb))
}
