package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// eventResourcesSchema says what each event is about: a sandbox (every
// event an older rtemu recorded) or another resource (a secret), so the
// organisation-wide feed can filter by resource.
const eventResourcesSchema = `ALTER TABLE events ADD COLUMN resource_type TEXT NOT NULL DEFAULT 'sandbox';
	ALTER TABLE events ADD COLUMN resource_id TEXT NOT NULL DEFAULT '';
	UPDATE events SET resource_id = sandbox_id;
	CREATE INDEX events_resource ON events(resource_type, resource_id, seq);`

// eventResource is the resource an event is about, a sandbox's by default.
func eventResource(ev sandbox.Event) (string, string) {
	if ev.ResourceType == "" {
		return "sandbox", ev.SandboxID
	}
	return ev.ResourceType, ev.ResourceID
}

const eventCols = `seq, id, sandbox_id, type, severity, title, attributes, created_at, resource_type, resource_id`

// ListEvents returns up to limit events of one sandbox older than afterSeq
// (0: from the newest), newest first, and whether more follow.
func (s *Store) ListEvents(ctx context.Context, sandboxID string, limit int, afterSeq int64) ([]sandbox.Event, bool, error) {
	q := `SELECT ` + eventCols + ` FROM events WHERE sandbox_id = ?`
	args := []any{sandboxID}
	if afterSeq > 0 {
		q += ` AND seq < ?`
		args = append(args, afterSeq)
	}
	args = append(args, limit+1)
	out, err := queryAll(ctx, s.r, scanEvent, q+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list events: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// ListFeed returns up to limit events matching f older than afterSeq (0:
// from the newest), newest first, and whether more follow.
func (s *Store) ListFeed(ctx context.Context, f sandbox.FeedFilter, limit int, afterSeq int64) ([]sandbox.Event, bool, error) {
	q, args := `SELECT `+eventCols+` FROM events WHERE 1 = 1`, []any{}
	for col, val := range map[string]string{"resource_type": f.ResourceType, "resource_id": f.ResourceID, "type": f.EventType} {
		if val != "" {
			q += ` AND ` + col + ` = ?`
			args = append(args, val)
		}
	}
	// julianday reads the stored RFC 3339 times whatever their fraction's
	// length, which a comparison of the texts would not.
	if f.Since != nil {
		q += ` AND julianday(created_at) >= julianday(?)`
		args = append(args, ts(*f.Since))
	}
	if f.Until != nil {
		q += ` AND julianday(created_at) <= julianday(?)`
		args = append(args, ts(*f.Until))
	}
	if afterSeq > 0 {
		q += ` AND seq < ?`
		args = append(args, afterSeq)
	}
	args = append(args, limit+1)
	out, err := queryAll(ctx, s.r, scanEvent, q+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list feed: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func scanEvent(row scanner) (sandbox.Event, error) {
	var (
		ev             sandbox.Event
		attrs, created string
	)
	if err := row.Scan(&ev.Seq, &ev.ID, &ev.SandboxID, &ev.Type, &ev.Severity, &ev.Title, &attrs, &created, &ev.ResourceType, &ev.ResourceID); err != nil {
		return ev, err
	}
	if err := json.Unmarshal([]byte(attrs), &ev.Attributes); err != nil {
		return ev, fmt.Errorf("event %s: attributes: %w", ev.ID, err)
	}
	var err error
	if ev.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return ev, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	return ev, nil
}
