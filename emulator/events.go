package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// eventsPath is the dashboard's live feed. It is the only endpoint that also
// takes the API key as ?key=, because EventSource cannot send headers.
const eventsPath = "/_emulator/events"

// eventsHeartbeat keeps idle streams alive through proxies and lets the
// server notice a client that went away without closing.
const eventsHeartbeat = 20 * time.Second

// events streams every change of the service as server-sent events:
//
//	event: change
//	data: {"kind":"sandbox","id":"sandbox-…","status":"running"}
//
// A change says what to read again, not the new state, so a client that
// lost some (a slow reader loses changes rather than slowing rtemu) re-reads
// everything when it reconnects.
func (a *api) events(c echo.Context) error {
	ctx := c.Request().Context()
	// Subscribe before the stream opens: nothing that happens after the
	// client sees it open is missed.
	changes := a.svc.Subscribe(ctx)
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n: rtemu change feed\n\n"); err != nil {
		return nil
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
			// http.Server.Shutdown waits for every open answer; this one
			// would never end by itself.
			return nil
		case ch, ok := <-changes:
			if !ok {
				return nil
			}
			js, _ := json.Marshal(ch)
			_, err = fmt.Fprintf(w, "event: change\ndata: %s\n\n", js)
		case <-heartbeat.C:
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		}
		if err != nil {
			return nil // the client went away
		}
		w.Flush()
	}
}
