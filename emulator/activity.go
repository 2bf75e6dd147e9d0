package emulator

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// eventJSON is the hosted activity event, every field of it: those about
// things rtemu has no such thing as (threads, agent runs, tools, installed
// agents, runmesh nodes, code executions) are null.
type eventJSON struct {
	ID                        string         `json:"id"`
	OrgID                     string         `json:"orgId"`
	ActorUserID               *string        `json:"actorUserId"`
	ActorType                 string         `json:"actorType"`
	ResourceType              string         `json:"resourceType"`
	ResourceID                string         `json:"resourceId"`
	EventType                 string         `json:"eventType"`
	Severity                  string         `json:"severity"`
	Status                    string         `json:"status"`
	Title                     string         `json:"title"`
	Summary                   string         `json:"summary"`
	Attributes                map[string]any `json:"attributes"`
	ThreadID                  *string        `json:"threadId"`
	AgentRunID                *string        `json:"agentRunId"`
	SandboxID                 *string        `json:"sandboxId"`
	WorkspaceID               *string        `json:"workspaceId"`
	ToolSlug                  *string        `json:"toolSlug"`
	InstallableAgentInstallID *string        `json:"installableAgentInstallId"`
	RunmeshNodeID             *string        `json:"runmeshNodeId"`
	CodeExecutionID           *string        `json:"codeExecutionId"`
	CreatedAt                 string         `json:"createdAt"`
}

type activityJSON struct {
	Events []eventJSON `json:"events"`
}

func toEventJSON(ev sandbox.Event) eventJSON {
	attrs := ev.Attributes
	if attrs == nil {
		attrs = map[string]any{}
	}
	typ, id := ev.Resource()
	out := eventJSON{ID: ev.ID, OrgID: sandbox.LocalOrgID, ActorType: ev.ActorType(), ResourceType: typ, ResourceID: id,
		EventType: ev.Type, Severity: ev.Severity, Status: ev.Outcome(), Title: ev.Title, Summary: ev.Summary(),
		Attributes: attrs, SandboxID: optString(ev.SandboxID), CreatedAt: rfc3339(ev.CreatedAt)}
	if out.ActorType == "user" {
		out.ActorUserID = optString(sandbox.LocalUserID)
	}
	return out
}

func replyEvents(c echo.Context, page sandbox.Page[sandbox.Event]) error {
	out := activityJSON{Events: make([]eventJSON, 0, len(page.Items))}
	for _, ev := range page.Items {
		out.Events = append(out.Events, toEventJSON(ev))
	}
	return replyList(c, out, page.HasMore, page.NextCursor)
}

// queryLimit reads the limit query parameter (0 when absent).
func queryLimit(c echo.Context) (int, error) {
	l := c.QueryParam("limit")
	if l == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 {
		return 0, badRequest("limit", "must be a whole number from 1 to 500")
	}
	return n, nil
}

func (a *api) sandboxActivity(c echo.Context) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	page, err := a.svc.Activity(c.Request().Context(), c.Param("id"), sandbox.ActivityFilter{Cursor: c.QueryParam("cursor"), Limit: limit})
	if err != nil {
		return err
	}
	return replyEvents(c, page)
}

// activity is the organisation-wide feed: GET /v1/activity.
func (a *api) activity(c echo.Context) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	p := sandbox.FeedParams{Limit: limit, Cursor: c.QueryParam("cursor"), FeedFilter: sandbox.FeedFilter{
		ResourceType: c.QueryParam("resource_type"), ResourceID: c.QueryParam("resource_id"), EventType: c.QueryParam("event_type"),
	}}
	for name, dst := range map[string]**time.Time{"since": &p.Since, "until": &p.Until} {
		if v := c.QueryParam(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return badRequest(name, "must be an RFC 3339 time, e.g. 2026-05-06T10:00:00Z")
			}
			*dst = &t
		}
	}
	page, err := a.svc.Feed(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return replyEvents(c, page)
}
