package emulator

import (
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPICoversEveryRoute: every route of the API, rtemu's own
// included, is in the OpenAPI document with its method (the dashboard's
// files and the 501 stand-ins are not API).
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:(\w+)`)
	a := &api{}
	for _, r := range a.routes() {
		if r.op == "dashboard" || r.op == "unimplemented" {
			continue
		}
		path := param.ReplaceAllString(strings.TrimSuffix(r.path, "/*"), "{$1}")
		if strings.HasSuffix(r.path, "/*") {
			path += "/{path}"
		}
		item := doc.Paths.Find(path)
		if item == nil {
			// The path parameter may be named otherwise in the document.
			for p, it := range doc.Paths.Map() {
				if regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(p, "{}") == regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "{}") {
					item = it
				}
			}
		}
		method := r.method
		if method == getHead {
			method = "GET"
		}
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s (%s) is not in openapi.yaml", method, path, r.op)
		}
	}
}
