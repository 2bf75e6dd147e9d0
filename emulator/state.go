package emulator

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// maxStateBody bounds a state archive uploaded to POST /_emulator/state.
const maxStateBody = 64 << 30

// saveGrace is how long a save waits for the requests in flight to end
// before it ends them, as a reset does.
const saveGrace = 10 * time.Second

// saveState streams the state archive (docs/state.md). The state is
// captured with the gate held, so no write is half in it; the archive is
// streamed after, with the API open again.
func (a *api) saveState(c echo.Context) error {
	ctx := c.Request().Context()
	var opts sandbox.SaveOptions
	switch v := c.QueryParam("referenceImages"); v {
	case "", "false":
	case "true":
		opts.ReferenceImages = true
	default:
		return &sandbox.Error{Kind: sandbox.KindInvalid, Message: fmt.Sprintf("referenceImages must be true or false, not %q", v)}
	}
	var saved *sandbox.SavedState
	err := a.gate.quiet(saveGrace, func() error {
		var err error
		saved, err = a.svc.PrepareSave(ctx, a.version, opts)
		return err
	})
	if err != nil {
		return err
	}
	defer saved.Close()
	m := saved.Manifest()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/x-tar")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="rtemu-state-%s.tar"`, m.CreatedAt.Format("20060102-150405")))
	h.Set("X-Rtemu-State-Id", m.ID)
	c.Response().WriteHeader(http.StatusOK)
	if err := saved.WriteTo(ctx, c.Response()); err != nil {
		// The answer has begun: the client sees an archive without its
		// trailer, which a load refuses as truncated.
		a.log.Warn("state save cut short", "err", err)
		return nil
	}
	return nil
}

// loadState replaces the state with the archive in the body and keeps it
// as the seed.
func (a *api) loadState(c echo.Context) error {
	var res *sandbox.LoadResult
	err := a.gate.exclusive(func() error {
		var err error
		res, err = a.svc.LoadState(c.Request().Context(), c.Request().Body)
		return err
	})
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"loaded": true, "id": res.Manifest.ID,
		"sandboxes": res.Sandboxes, "createdAt": res.Manifest.CreatedAt.UTC().Format(time.RFC3339)})
}

// resetBody is POST /_emulator/reset's optional body.
type resetBody struct {
	To string `json:"to"`
}

func (a *api) resetTo(ctx context.Context, to string) (int, error) {
	if to == "seed" {
		return a.svc.ResetToSeed(ctx)
	}
	return a.svc.Reset(ctx)
}
