package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// maxBody is the largest request body the JSON API reads.
const maxBody = 1 << 20

// limitBody caps every request body at n, or at perRoute[route] for the
// routes that take more (workspace uploads); reading past the cap fails
// with *http.MaxBytesError, which the error handler answers with 413.
// Echo routes before it runs middleware, so the route is known here.
func limitBody(n int64, perRoute map[string]int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			n := n
			if lim, ok := perRoute[c.Path()]; ok {
				n = lim
			}
			r := c.Request()
			if r.ContentLength > n {
				return &http.MaxBytesError{Limit: n}
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, n)
			return next(c)
		}
	}
}

// decodeJSON reads a JSON object body into v. Unknown fields are ignored (as
// the hosted API does); a known field of the wrong type is a 400 naming it.
// An empty body decodes as {} when optional.
func decodeJSON(c echo.Context, v any, optional bool) error {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		// curl -d sends application/x-www-form-urlencoded unless told
		// otherwise; its body is still the JSON the user typed.
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json") ||
			mt == "application/x-www-form-urlencoded" || mt == "text/plain") {
			return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
				message: fmt.Sprintf("Content-Type %q is not supported; send application/json", ct)}
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		if optional {
			return nil
		}
		return badRequest("body", "a JSON object is required")
	}
	if body[0] != '{' {
		return badRequest("body", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Not dec.More(), which says false before a stray "}" or "]" (it is
	// made for walking arrays): anything but space after the object is
	// refused.
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return badRequest("body", "unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return badRequest(field, fmt.Sprintf("must be %s, not a JSON %s", jsonKind(te.Type.String()), te.Value))
	case errors.As(err, &se):
		return badRequest("body", fmt.Sprintf("malformed JSON at byte %d", se.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "malformed JSON: unexpected end")
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("body", "malformed JSON")
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "*int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.Contains(goType, "string") && strings.HasPrefix(goType, "map"):
		return "an object of strings"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "an object"
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	}
	return goType
}
