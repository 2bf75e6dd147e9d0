package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// logsPath serves rtemu's own recent log lines (emulator-only), for the
// dashboard's log panel.
const logsPath = "/_emulator/logs"

// logs answers the newest log lines ({lines: [...]}, oldest first), or with
// ?follow=1 streams them as server-sent events (event: log, one line each):
// the newest first, then each new one as it is logged.
func (a *api) logs(c echo.Context) error {
	if a.logRing == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented",
			message: "this rtemu keeps no log in memory"}
	}
	q := c.QueryParams()
	limit := 200
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit", "must be a whole number from 1 to 1000")
		}
		limit = n
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("follow", "must be 1 or 0 (true or false)")
		}
		follow = b
	}
	if !follow {
		return reply(c, http.StatusOK, map[string]any{"lines": a.logRing.Recent(limit)})
	}
	ctx := c.Request().Context()
	recent, lines, stop := a.logRing.Follow(ctx, limit)
	defer stop()
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(v any) error {
		js, _ := json.Marshal(v)
		_, err := fmt.Fprintf(w, "event: log\ndata: %s\n\n", js)
		return err
	}
	if _, err := fmt.Fprint(w, "retry: 1000\n: rtemu log\n\n"); err != nil {
		return nil
	}
	for _, e := range recent {
		if send(e) != nil {
			return nil
		}
	}
	w.Flush()
	heartbeat := time.NewTicker(eventsHeartbeat)
	defer heartbeat.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-a.stopStreams:
			return nil // Shutdown waits for every answer; this one never ends by itself
		case e := <-lines:
			err = send(e)
		case <-heartbeat.C:
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		}
		if err != nil {
			return nil // the client went away
		}
		w.Flush()
	}
}
