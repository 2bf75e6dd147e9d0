package emulator

import (
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

type eventJSON struct {
	ID         string         `json:"id"`
	SandboxID  string         `json:"sandboxId"`
	EventType  string         `json:"eventType"`
	Severity   string         `json:"severity"`
	Title      string         `json:"title"`
	Attributes map[string]any `json:"attributes"`
	CreatedAt  string         `json:"createdAt"`
	// The hosted feed's fields: every event here is about a sandbox.
	ResourceType string `json:"resourceType"`
	ResourceID   string `json:"resourceId"`
	ActorType    string `json:"actorType"`
	Status       string `json:"status"`
	Summary      string `json:"summary"`
}

type activityJSON struct {
	Events []eventJSON `json:"events"`
}

func (a *api) sandboxActivity(c echo.Context) error {
	f := sandbox.ActivityFilter{Cursor: c.QueryParam("cursor")}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return badRequest("limit", "must be a whole number from 1 to 500")
		}
		f.Limit = n
	}
	page, err := a.svc.Activity(c.Request().Context(), c.Param("id"), f)
	if err != nil {
		return err
	}
	out := activityJSON{Events: make([]eventJSON, 0, len(page.Items))}
	for _, ev := range page.Items {
		attrs := ev.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		out.Events = append(out.Events, eventJSON{ID: ev.ID, SandboxID: ev.SandboxID, EventType: ev.Type,
			Severity: ev.Severity, Title: ev.Title, Attributes: attrs, CreatedAt: rfc3339(ev.CreatedAt),
			ResourceType: "sandbox", ResourceID: ev.SandboxID, ActorType: ev.ActorType(), Status: ev.Outcome(), Summary: ev.Summary()})
	}
	return replyList(c, out, page.HasMore, page.NextCursor)
}
