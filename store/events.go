package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// ListEvents returns up to limit events of one sandbox older than afterSeq
// (0: from the newest), newest first, and whether more follow.
func (s *Store) ListEvents(ctx context.Context, sandboxID string, limit int, afterSeq int64) ([]sandbox.Event, bool, error) {
	q := `SELECT seq, id, sandbox_id, type, severity, title, attributes, created_at FROM events WHERE sandbox_id = ?`
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

func scanEvent(row scanner) (sandbox.Event, error) {
	var (
		ev             sandbox.Event
		attrs, created string
	)
	if err := row.Scan(&ev.Seq, &ev.ID, &ev.SandboxID, &ev.Type, &ev.Severity, &ev.Title, &attrs, &created); err != nil {
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
