package sandbox

import (
	"context"
	"time"
)

const (
	resourceTypeSandbox   = "sandbox"
	resourceTypeSecret    = "secret"
	maxFeedFilterValueLen = 256
)

// FeedFilter selects events of the organisation-wide feed: every field
// given must match. Since and Until bound createdAt (inclusive).
type FeedFilter struct {
	ResourceType string
	ResourceID   string
	EventType    string
	Since, Until *time.Time
}

// FeedStore reads the organisation-wide feed. *store.Store implements it.
type FeedStore interface {
	// ListFeed returns up to limit events matching f older than afterSeq
	// (0: from the newest), newest first, and whether more follow.
	ListFeed(ctx context.Context, f FeedFilter, limit int, afterSeq int64) ([]Event, bool, error)
}

// FeedParams is a page of the organisation-wide feed.
type FeedParams struct {
	FeedFilter
	Limit  int    // 1..MaxListLimit; 0 = MaxListLimit
	Cursor string // from a previous page's NextCursor
}

// Feed returns one page of the organisation-wide activity feed: the events
// of every sandbox (destroyed ones too) and of other resources (secrets),
// newest first.
func (s *Service) Feed(ctx context.Context, p FeedParams) (Page[Event], error) {
	var v invalid
	if p.Limit == 0 {
		p.Limit = MaxListLimit
	}
	if p.Limit < 1 || p.Limit > MaxListLimit {
		v.add("limit", "must be between 1 and 500")
	}
	for field, val := range map[string]string{"resource_type": p.ResourceType, "resource_id": p.ResourceID, "event_type": p.EventType} {
		if len(val) > maxFeedFilterValueLen {
			v.add(field, "must be at most %d characters", maxFeedFilterValueLen)
		}
	}
	if p.Since != nil && p.Until != nil && p.Until.Before(*p.Since) {
		v.add("until", "must not be before since")
	}
	if err := v.err(); err != nil {
		return Page[Event]{}, err
	}
	after, err := parseCursor(p.Cursor)
	if err != nil {
		return Page[Event]{}, err
	}
	s.flushEvents() // the feed shows every event recorded before this read
	items, more, err := s.store.ListFeed(ctx, p.FeedFilter, p.Limit, after)
	if err != nil {
		return Page[Event]{}, err
	}
	page := Page[Event]{Items: items, HasMore: more}
	if more && len(items) > 0 {
		page.NextCursor = makeCursor(items[len(items)-1].Seq)
	}
	return page, nil
}

// Resource is what an event is about: its type and id ("sandbox" and the
// sandbox's id for events recorded before resources had types).
func (e Event) Resource() (typ, id string) {
	if e.ResourceType == "" {
		return resourceTypeSandbox, e.SandboxID
	}
	return e.ResourceType, e.ResourceID
}
