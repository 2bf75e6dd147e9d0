package emulator

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// wantsEventStream says whether the client asked for server-sent events.
func wantsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// sseKeepAlive is how often an idle stream gets a comment line, so proxies
// and clients with read timeouts do not drop a quiet command.
const sseKeepAlive = 15 * time.Second

// execStream runs a command and streams its output as server-sent events:
// "stdout" and "stderr" events ({"data": text}) as the output comes, then
// one "exit" event ({exitCode, timedOut, durationMs}), or an "error" event
// ({code, message}) when the command could not finish. Failures found
// before the command starts (bad input, unknown or paused sandbox) are the
// usual JSON error envelope. A client that disconnects ends the command.
func (a *api) execStream(c echo.Context, p sandbox.ExecParams) error {
	es := &eventStream{res: c.Response()}
	stdout, stderr := &chunkWriter{es: es, event: "stdout"}, &chunkWriter{es: es, event: "stderr"}
	p.Stdout, p.Stderr, p.Started = stdout, stderr, es.start
	stopBeat := es.keepAlive(sseKeepAlive)
	res, err := a.svc.Exec(c.Request().Context(), c.Param("id"), p)
	if err == nil {
		defer res.Close()
	}
	stopBeat()
	if err != nil && !es.hasStarted() {
		return err
	}
	stdout.flush()
	stderr.flush()
	if err != nil {
		if c.Request().Context().Err() != nil {
			return nil // the client is gone; the command was ended
		}
		ev := errorEvent{Code: "internal_error", Message: "internal error (rtemu's log has the cause)"}
		var se *sandbox.Error
		if errors.As(err, &se) {
			ev.Code, ev.Message = a.code(se.Kind), restMessage(se)
		} else {
			a.log.Error("streaming exec failed", "requestId", requestIDOf(c), "err", err)
		}
		es.send("error", ev)
		return nil
	}
	es.send("exit", exitEvent{ExitCode: res.ExitCode, TimedOut: res.TimedOut, DurationMs: res.Duration.Milliseconds()})
	return nil
}

type exitEvent struct {
	ExitCode   int   `json:"exitCode"`
	TimedOut   bool  `json:"timedOut"`
	DurationMs int64 `json:"durationMs"`
}

type errorEvent struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// eventStream writes server-sent events, each flushed at once. It is safe
// for concurrent use; after a failed write (the client is gone) it writes
// nothing more.
type eventStream struct {
	mu      sync.Mutex
	res     *echo.Response
	started bool
	failed  bool
}

// start sends the response header: the command is about to run.
func (s *eventStream) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
}

func (s *eventStream) startLocked() {
	if s.started {
		return
	}
	s.started = true
	h := s.res.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx-style proxies in front of rtemu not to buffer.
	h.Set("X-Accel-Buffering", "no")
	s.res.WriteHeader(http.StatusOK)
	s.res.Flush()
}

func (s *eventStream) hasStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

func (s *eventStream) send(event string, data any) {
	js, err := json.Marshal(data)
	if err != nil {
		return
	}
	s.write("event: " + event + "\ndata: " + string(js) + "\n\n")
}

func (s *eventStream) write(frame string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
	if s.failed {
		return
	}
	if _, err := s.res.Write([]byte(frame)); err != nil {
		s.failed = true
		return
	}
	if err := http.NewResponseController(s.res.Writer).Flush(); err != nil {
		s.failed = true
	}
}

// keepAlive sends a comment line every interval until stopped.
func (s *eventStream) keepAlive(every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if s.hasStarted() {
					s.write(": keep-alive\n\n")
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// chunkWriter turns one output stream into events. A UTF-8 sequence split
// between two writes is held back until it is whole, so every event carries
// valid text (bytes that are not UTF-8 at all arrive as U+FFFD).
type chunkWriter struct {
	es    *eventStream
	event string
	carry []byte
}

type chunkEvent struct {
	Data string `json:"data"`
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	buf := append(w.carry, p...)
	cut := wholeRunes(buf)
	w.carry = append([]byte(nil), buf[cut:]...)
	if cut > 0 {
		w.es.send(w.event, chunkEvent{Data: string(buf[:cut])})
	}
	return len(p), nil
}

func (w *chunkWriter) flush() {
	if len(w.carry) > 0 {
		w.es.send(w.event, chunkEvent{Data: string(w.carry)})
		w.carry = nil
	}
}

// wholeRunes returns the length of b without a trailing incomplete UTF-8
// sequence.
func wholeRunes(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
