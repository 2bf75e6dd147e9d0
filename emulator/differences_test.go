package emulator

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestREADMEListsUnimplemented keeps the README's "Differences from the
// hosted API" table in step with the routes that answer 501.
func TestREADMEListsUnimplemented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Differences from the hosted API")
	if i < 0 {
		t.Fatal("README has no Differences from the hosted API section")
	}
	var row string
	for _, line := range strings.Split(readme[i:], "\n") {
		if strings.HasPrefix(line, "| Not implemented") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("the differences table has no Not implemented row")
	}
	var documented []string
	for _, m := range regexp.MustCompile("`((?:GET|POST|PUT|PATCH|DELETE) /[^`]+)`").FindAllStringSubmatch(row, -1) {
		documented = append(documented, m[1])
	}
	var served []string
	for _, r := range notImplemented {
		served = append(served, r.method+" "+regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.path, "{$1}"))
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("README lists as not implemented:\n  %s\nrtemu answers 501 on:\n  %s",
			strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
}

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
