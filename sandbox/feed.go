package sandbox

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
)

// ActivityFilter selects one page of a sandbox's activity feed.
type ActivityFilter struct {
	Limit  int    // 1..MaxListLimit; 0 = MaxListLimit
	Cursor string // from a previous page's NextCursor
}

// Activity returns one page of a sandbox's activity feed, newest first. The
// feed of a destroyed sandbox stays readable by its id.
func (s *Service) Activity(ctx context.Context, ref string, f ActivityFilter) (Page[Event], error) {
	if f.Limit == 0 {
		f.Limit = MaxListLimit
	}
	if f.Limit < 1 || f.Limit > MaxListLimit {
		return Page[Event]{}, &Error{Kind: KindInvalid, Message: "invalid request",
			Details: []FieldError{{Field: "limit", Message: "must be between 1 and 500"}}}
	}
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return Page[Event]{}, err
	}
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return Page[Event]{}, err
	}
	s.flushEvents() // the feed shows every event recorded before this read
	items, more, err := s.store.ListEvents(ctx, sb.ID, f.Limit, after)
	if err != nil {
		return Page[Event]{}, err
	}
	p := Page[Event]{Items: items, HasMore: more}
	if more && len(items) > 0 {
		p.NextCursor = makeCursor(items[len(items)-1].Seq)
	}
	return p, nil
}

// Cursors are the sequence number of the last item of a page, opaque to
// clients.
func makeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

// parseCursor reads a cursor; "" is the first page (0).
func parseCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	var after int64
	if err == nil {
		after, err = strconv.ParseInt(string(b), 10, 64)
	}
	if err != nil || after <= 0 {
		return 0, &Error{Kind: KindInvalid, Message: "invalid request",
			Details: []FieldError{{Field: "cursor", Message: "not a cursor this API returned"}}}
	}
	return after, nil
}

// systemEvents are the feed's entries no client call caused: rtemu or the
// engine did it.
var systemEvents = map[string]bool{"running": true, "failed": true, "error": true, "idle-paused": true}

// ActorType is who caused the event, in the hosted feed's words: "system"
// for what rtemu or the engine did by itself, "user" for a client's call
// (there are no agents or other actors in rtemu).
func (e Event) ActorType() string {
	if systemEvents[e.Type] {
		return "system"
	}
	return "user"
}

// Outcome is the hosted feed's status of an event: "failed" for an error,
// "cancelled" for a command whose client went away, else "completed".
func (e Event) Outcome() string {
	switch {
	case e.Severity == "error":
		return "failed"
	case e.Attributes["cancelled"] == true:
		return "cancelled"
	}
	return "completed"
}

// Summary is a one-line description of an event: its title with what the
// attributes say that matters most.
func (e Event) Summary() string {
	a := e.Attributes
	switch e.Type {
	case "exec":
		if a["cancelled"] == true {
			return fmt.Sprintf("%v: cancelled after %v ms", a["command"], a["durationMs"])
		}
		return fmt.Sprintf("%v: exit %v in %v ms", a["command"], a["exitCode"], a["durationMs"])
	case "failed", "error":
		return fmt.Sprintf("%s: %v", e.Title, a["error"])
	case "url-traffic":
		return fmt.Sprintf("%s: %v %v on port %v", e.Title, a["method"], a["path"], a["port"])
	}
	return e.Title
}

// recordEvent appends an event about any resource to the feed (event is
// this for a sandbox's).
func (s *Service) recordEvent(_ context.Context, ev Event) {
	if ev.Attributes == nil {
		ev.Attributes = map[string]any{}
	}
	ev.ID, ev.CreatedAt = "evt_"+newID()[len("sandbox-"):], s.now()
	s.waitEvent(s.enqueueEvent(ev))
}
