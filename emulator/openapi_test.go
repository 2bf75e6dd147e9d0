package emulator_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// openAPIRouter loads the document rtemu serves at /openapi.json.
func openAPIRouter(t *testing.T, base string) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		resp, err := http.Get(base + "/openapi.json")
		if err != nil {
			specErr = err
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		doc, err := openapi3.NewLoader().LoadFromData(b)
		if err != nil {
			specErr = err
			return
		}
		if specErr = doc.Validate(context.Background()); specErr != nil {
			return
		}
		// No servers: match any host (the suite's ports are ephemeral).
		doc.Servers = nil
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("openapi.json: %v", specErr)
	}
	return specRouter
}

// fileTail matches the workspace routes whose {path} is a file path: OpenAPI
// path parameters hold one segment, so the router is shown the tail as one
// (escaped) segment.
var fileTail = regexp.MustCompile(`^(/v1/workspaces/[^/]+/(?:files|upload|info))/(.+)$`)

func routable(req *http.Request) *http.Request {
	m := fileTail.FindStringSubmatch(req.URL.EscapedPath())
	if m == nil || !strings.Contains(m[2], "/") {
		return req
	}
	r2 := req.Clone(req.Context())
	u := *req.URL
	u.RawPath = m[1] + "/" + strings.ReplaceAll(m[2], "/", "%2F")
	u.Path, _ = url.PathUnescape(u.RawPath)
	r2.URL = &u
	return r2
}

// checkOpenAPI validates one exchange of the suite against the document: the
// response always, the request when rtemu accepted it (the bad-input tests
// send invalid requests on purpose). A route rtemu serves that the document
// lacks fails the test.
func checkOpenAPI(t *testing.T, base string, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	router := openAPIRouter(t, base)
	route, params, err := router.FindRoute(routable(req))
	if err != nil {
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			// Not a route of the API (a malformed path, refused as such),
			// or an upstream one rtemu does not serve.
			return
		}
		t.Errorf("openapi: %s %s answered %d but is not in the document", req.Method, req.URL.Path, resp.StatusCode)
		return
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if resp.StatusCode < 300 {
		r2 := req.Clone(ctx)
		r2.Body = io.NopCloser(bytes.NewReader(reqBody))
		in.Request = r2
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("openapi: request %s %s does not match the document: %v", req.Method, req.URL.Path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("openapi: response %d to %s %s does not match the document: %v", resp.StatusCode, req.Method, req.URL.Path, err)
	}
}
