package emulator

import (
	"crypto/subtle"
	"net/http"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
)

// keyPattern is the shape of a Runtools API key.
var keyPattern = regexp.MustCompile(`^rt_(live|test)_[A-Za-z0-9]{32}$`)

// authenticate checks X-API-Key or Authorization: Bearer. Without strict
// keys any well-formed key is accepted; with authOff anything is.
func authenticate(strict []string, authOff bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if authOff || noKeyNeeded[c.Path()] {
				return next(c)
			}
			key, bearer := apiKey(c.Request())
			if key == "" && c.Path() == eventsPath {
				// EventSource cannot send headers. Only here does the key ride
				// in the query; logRequests never logs queries.
				key = strings.TrimSpace(c.QueryParam("key"))
			}
			switch {
			case key == "":
				return &apiError{status: http.StatusUnauthorized, code: "unauthorized",
					message: "authentication required: send X-API-Key: KEY or Authorization: Bearer KEY"}
			case bearer && jwtPattern.MatchString(key):
				// A session token (the dashboard's and CLI's, upstream):
				// any is accepted, unless strict mode lists the ones to take.
				if len(strict) > 0 && !oneOf(key, strict) {
					return &apiError{status: http.StatusUnauthorized, code: "invalid_token",
						message: "session token not accepted (strict mode: only the --api-key values are)"}
				}
				return next(c)
			case !keyPattern.MatchString(key):
				return &apiError{status: http.StatusUnauthorized, code: "invalid_token",
					message: "unrecognized token format: an API key is rt_live_ or rt_test_ followed by 32 letters and digits"}
			case len(strict) > 0 && !oneOf(key, strict):
				return &apiError{status: http.StatusUnauthorized, code: "invalid_token",
					message: "API key not found or revoked"}
			}
			return next(c)
		}
	}
}

// noKeyNeeded are the routes served without a key: health probes, and the
// dashboard's page and static files, which hold no data. A terminal's
// WebSocket is opened by a browser, which cannot send a key with it: its
// one-time session id (minted with a key) stands for one.
var noKeyNeeded = map[string]bool{"/health": true, "/openapi.json": true, "/": true, dashboardAssets + "*": true,
	terminalPath + ":id": true}

// jwtPattern is the shape of a session token (a JWT: three base64url parts,
// the first a JSON header, so "eyJ"), which upstream takes as a Bearer.
var jwtPattern = regexp.MustCompile(`^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

// apiKey returns the credential of a request, and whether it came as a
// Bearer token.
func apiKey(r *http.Request) (string, bool) {
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return k, false
	}
	auth := r.Header.Get("Authorization")
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:]), true
	}
	return "", false
}

func oneOf(key string, keys []string) bool {
	found := 0
	for _, k := range keys {
		found |= subtle.ConstantTimeCompare([]byte(key), []byte(k))
	}
	return found == 1
}
