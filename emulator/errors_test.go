package emulator

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestPanicIsAnInternalError: a handler that panics answers 500 in the
// envelope, and the API keeps serving.
func TestPanicIsAnInternalError(t *testing.T) {
	t.Parallel()
	a := &api{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := echo.New()
	e.HTTPErrorHandler = a.handleError
	e.Use(requestID, recoverPanics)
	e.GET("/boom", func(echo.Context) error { panic("boom") })
	e.GET("/fine", func(c echo.Context) error { return c.String(http.StatusOK, "fine") })
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{{"/boom", 500, `"code":"internal_error"`}, {"/fine", 200, "fine"}} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %s", tc.path, rec.Code, rec.Body.String())
		}
	}
}
