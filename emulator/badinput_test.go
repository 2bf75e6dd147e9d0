package emulator_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestBadInput sends malformed and invalid requests; each must get the right
// 4xx in the error envelope and change nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	sb := c.create(map[string]any{"name": "target", "tags": []string{"keep"}})
	id := sb["id"].(string)
	before := c.must(200, "GET", "/v1/sandboxes/"+id, nil).Data()

	long := strings.Repeat("a", 64)
	huge := `{"template":"base-ubuntu","metadata":{"blob":"` + strings.Repeat("x", 1<<20) + `"}}`
	create := func(extra string) string { return `{"template":"base-ubuntu"` + extra + `}` }
	mount := func(path string) string {
		return create(`,"mounts":[{"workspaceId":"9b84ef42-9c3a-4930-9d4c-45c7f5c22d8e","path":` + path + `}]`)
	}
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		code    string
		field   string // a details entry must name it, when set
	}{
		{"malformed JSON", "POST", "/v1/sandboxes", `{"template":`, nil, 400, "bad_request", "body"},
		{"not an object", "POST", "/v1/sandboxes", `["base-ubuntu"]`, nil, 400, "bad_request", "body"},
		{"empty body", "POST", "/v1/sandboxes", ``, nil, 400, "bad_request", "body"},
		{"trailing garbage", "POST", "/v1/sandboxes", create(``) + `x`, nil, 400, "bad_request", "body"},
		{"a second object after a stray brace", "POST", "/v1/sandboxes", create(``) + `}{"x":1}`, nil, 400, "bad_request", "body"},
		{"template missing", "POST", "/v1/sandboxes", `{}`, nil, 400, "bad_request", "template"},
		{"template wrong type", "POST", "/v1/sandboxes", `{"template":7}`, nil, 400, "bad_request", "template"},
		{"unknown template", "POST", "/v1/sandboxes", `{"template":"windows-11"}`, nil, 400, "bad_request", "template"},
		{"vcpus string", "POST", "/v1/sandboxes", create(`,"resources":{"vcpus":"2"}`), nil, 400, "bad_request", "resources.vcpus"},
		{"vcpus fraction", "POST", "/v1/sandboxes", create(`,"resources":{"vcpus":1.5}`), nil, 400, "bad_request", "resources.vcpus"},
		{"vcpus negative", "POST", "/v1/sandboxes", create(`,"resources":{"vcpus":-2}`), nil, 400, "bad_request", "resources.vcpus"},
		{"vcpus huge", "POST", "/v1/sandboxes", create(`,"resources":{"vcpus":1000000}`), nil, 400, "bad_request", "resources.vcpus"},
		{"vcpus overflow", "POST", "/v1/sandboxes", create(`,"resources":{"vcpus":99999999999999999999}`), nil, 400, "bad_request", "resources.vcpus"},
		{"memory no unit", "POST", "/v1/sandboxes", create(`,"resources":{"memory":"4096"}`), nil, 400, "bad_request", "resources.memory"},
		{"memory bad unit", "POST", "/v1/sandboxes", create(`,"resources":{"memory":"4XB"}`), nil, 400, "bad_request", "resources.memory"},
		{"memory negative", "POST", "/v1/sandboxes", create(`,"resources":{"memory":"-4GB"}`), nil, 400, "bad_request", "resources.memory"},
		{"memory too small", "POST", "/v1/sandboxes", create(`,"resources":{"memory":"1MB"}`), nil, 400, "bad_request", "resources.memory"},
		{"memory huge", "POST", "/v1/sandboxes", create(`,"resources":{"memory":"9999999GB"}`), nil, 400, "bad_request", "resources.memory"},
		{"memory number", "POST", "/v1/sandboxes", create(`,"resources":{"memory":4}`), nil, 400, "bad_request", "resources.memory"},
		{"disk bad", "POST", "/v1/sandboxes", create(`,"resources":{"disk":"lots"}`), nil, 400, "bad_request", "resources.disk"},
		{"resources not object", "POST", "/v1/sandboxes", create(`,"resources":"big"`), nil, 400, "bad_request", "resources"},
		{"idleTimeout negative", "POST", "/v1/sandboxes", create(`,"idleTimeout":-1`), nil, 400, "bad_request", "idleTimeout"},
		{"idleTimeout huge", "POST", "/v1/sandboxes", create(`,"idleTimeout":604801`), nil, 400, "bad_request", "idleTimeout"},
		{"idleTimeout string", "POST", "/v1/sandboxes", create(`,"idleTimeout":"600"`), nil, 400, "bad_request", "idleTimeout"},
		{"name too long", "POST", "/v1/sandboxes", create(`,"name":"` + long + `"`), nil, 400, "bad_request", "name"},
		{"name with space", "POST", "/v1/sandboxes", create(`,"name":"my box"`), nil, 400, "bad_request", "name"},
		{"name control char", "POST", "/v1/sandboxes", create(`,"name":"a\u0007b"`), nil, 400, "bad_request", "name"},
		{"name path trick", "POST", "/v1/sandboxes", create(`,"name":"../etc"`), nil, 400, "bad_request", "name"},
		{"name like an id", "POST", "/v1/sandboxes", create(`,"name":"sandbox-abcdefabcdef"`), nil, 400, "bad_request", "name"},
		{"name empty", "POST", "/v1/sandboxes", create(`,"name":""`), nil, 400, "bad_request", "name"},
		{"name taken", "POST", "/v1/sandboxes", create(`,"name":"target"`), nil, 409, "conflict", ""},
		{"tags not array", "POST", "/v1/sandboxes", create(`,"tags":"ci"`), nil, 400, "bad_request", "tags"},
		{"tag too long", "POST", "/v1/sandboxes", create(`,"tags":["` + long + `x"]`), nil, 400, "bad_request", "tags[0]"},
		{"tag control char", "POST", "/v1/sandboxes", create(`,"tags":["ok","a\nb"]`), nil, 400, "bad_request", "tags[1]"},
		{"tag empty", "POST", "/v1/sandboxes", create(`,"tags":[""]`), nil, 400, "bad_request", "tags[0]"},
		{"tag number", "POST", "/v1/sandboxes", create(`,"tags":[1]`), nil, 400, "bad_request", "tags"},
		{"env value number", "POST", "/v1/sandboxes", create(`,"env":{"A":1}`), nil, 400, "bad_request", "env"},
		{"env bad name", "POST", "/v1/sandboxes", create(`,"env":{"1A":"x"}`), nil, 400, "bad_request", "env.1A"},
		{"env name with =", "POST", "/v1/sandboxes", create(`,"env":{"A=B":"x"}`), nil, 400, "bad_request", "env.A=B"},
		{"env NUL", "POST", "/v1/sandboxes", create(`,"env":{"A":"x\u0000y"}`), nil, 400, "bad_request", "env.A"},
		{"metadata not object", "POST", "/v1/sandboxes", create(`,"metadata":[1]`), nil, 400, "bad_request", "metadata"},
		{"projectId not uuid", "POST", "/v1/sandboxes", create(`,"projectId":"proj-1"`), nil, 400, "bad_request", "projectId"},
		{"sshKeys garbage", "POST", "/v1/sandboxes", create(`,"sshKeys":["ssh-ed25519 !!!notbase64"]`), nil, 400, "bad_request", "sshKeys[0]"},
		{"rootPassword too long", "POST", "/v1/sandboxes", create(`,"rootPassword":"` + strings.Repeat("p", 73) + `"`), nil, 400, "bad_request", "rootPassword"},
		{"mount outside /workspace", "POST", "/v1/sandboxes", mount(`"/etc"`), nil, 400, "bad_request", "mounts[0].path"},
		{"mount dot-dot", "POST", "/v1/sandboxes", mount(`"/workspace/../etc"`), nil, 400, "bad_request", "mounts[0].path"},
		{"mount relative", "POST", "/v1/sandboxes", mount(`"workspace"`), nil, 400, "bad_request", "mounts[0].path"},
		{"mount prefix trick", "POST", "/v1/sandboxes", mount(`"/workspace-evil"`), nil, 400, "bad_request", "mounts[0].path"},
		{"mount NUL", "POST", "/v1/sandboxes", mount(`"/workspace/a\u0000b"`), nil, 400, "bad_request", "mounts[0].path"},
		{"mount duplicate", "POST", "/v1/sandboxes", create(`,"mounts":[{"workspaceId":"9b84ef42-9c3a-4930-9d4c-45c7f5c22d8e","path":"/workspace"},{"workspaceId":"9b84ef42-9c3a-4930-9d4c-45c7f5c22d8e","path":"/workspace/"}]`), nil, 400, "bad_request", "mounts[1].path"},
		{"mount bad workspace id", "POST", "/v1/sandboxes", create(`,"mounts":[{"workspaceId":"../../etc","path":"/workspace"}]`), nil, 400, "bad_request", "mounts[0].workspaceId"},
		{"mount unknown workspace", "POST", "/v1/sandboxes", mount(`"/workspace"`), nil, 400, "bad_request", "mounts[0].workspaceId"},
		{"body over 1 MiB", "POST", "/v1/sandboxes", huge, nil, 413, "payload_too_large", ""},
		{"xml body", "POST", "/v1/sandboxes", `<template/>`, []string{"Content-Type", "application/xml"}, 415, "unsupported_media_type", ""},
		{"exec empty command", "POST", "/v1/sandboxes/" + id + "/exec", `{"command":""}`, nil, 400, "bad_request", "command"},
		{"exec command missing", "POST", "/v1/sandboxes/" + id + "/exec", `{"cmd":"ls"}`, nil, 400, "bad_request", "command"},
		{"exec command array", "POST", "/v1/sandboxes/" + id + "/exec", `{"command":["ls"]}`, nil, 400, "bad_request", "command"},
		{"exec timeout negative", "POST", "/v1/sandboxes/" + id + "/exec", `{"command":"ls","timeout":-5}`, nil, 400, "bad_request", "timeout"},
		{"exec timeout huge", "POST", "/v1/sandboxes/" + id + "/exec", `{"command":"ls","timeout":99999999999}`, nil, 400, "bad_request", "timeout"},
		{"exec env bad", "POST", "/v1/sandboxes/" + id + "/exec", `{"command":"ls","env":{"-x":"1"}}`, nil, 400, "bad_request", "env.-x"},
		{"exec unknown sandbox", "POST", "/v1/sandboxes/sandbox-000000000000/exec", `{"command":"ls"}`, nil, 404, "not_found", ""},
		{"patch name wrong type", "PATCH", "/v1/sandboxes/" + id, `{"name":5}`, nil, 400, "bad_request", "name"},
		{"patch name invalid", "PATCH", "/v1/sandboxes/" + id, `{"name":"no spaces please"}`, nil, 400, "bad_request", "name"},
		{"patch projectId invalid", "PATCH", "/v1/sandboxes/" + id, `{"projectId":"x"}`, nil, 400, "bad_request", "projectId"},
		{"delete async not bool", "DELETE", "/v1/sandboxes/" + id + "?async=perhaps", ``, nil, 400, "bad_request", "async"},
		{"list limit zero", "GET", "/v1/sandboxes?limit=0", ``, nil, 400, "bad_request", "limit"},
		{"list limit negative", "GET", "/v1/sandboxes?limit=-1", ``, nil, 400, "bad_request", "limit"},
		{"list status unknown", "GET", "/v1/sandboxes?status=sleeping", ``, nil, 400, "bad_request", "status"},
		{"project without a name", "POST", "/v1/projects", `{"color":"#123456"}`, nil, 400, "bad_request", "name"},
		{"project name wrong type", "POST", "/v1/projects", `{"name":7}`, nil, 400, "bad_request", "name"},
		{"project color not a colour", "POST", "/v1/projects", `{"name":"x","color":"red"}`, nil, 400, "bad_request", "color"},
		{"project empty name", "POST", "/v1/projects", `{"name":"  "}`, nil, 400, "bad_request", "name"},
		{"unknown project", "GET", "/v1/projects/0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b", ``, nil, 404, "not_found", ""},
		{"project id not a UUID", "PATCH", "/v1/projects/nope", `{"name":"x"}`, nil, 404, "not_found", ""},
		{"project delete force not a bool", "DELETE", "/v1/projects/0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b?force=perhaps", ``, nil, 400, "bad_request", "force"},
		{"sandbox in an unknown project", "POST", "/v1/sandboxes", create(`,"projectId":"0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"`), nil, 400, "bad_request", "projectId"},
		{"list projectId not a UUID", "GET", "/v1/sandboxes?projectId=default", ``, nil, 400, "bad_request", "projectId"},
		{"list cursor forged", "GET", "/v1/sandboxes?cursor=../../etc", ``, nil, 400, "bad_request", "cursor"},
		{"path traversal id", "GET", "/v1/sandboxes/..%2F..%2Fetc%2Fpasswd", ``, nil, 404, "not_found", ""},
		{"unknown route", "GET", "/v1/nothing-here", ``, nil, 404, "not_found", ""},
		{"wrong method", "PUT", "/v1/sandboxes/" + id, `{}`, nil, 405, "method_not_allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := c.do(tt.method, tt.path, body, tt.headers...)
			if r.Status != tt.status || r.ErrCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q: %.300s", r.Status, r.ErrCode(), tt.status, tt.code, r.Body)
			}
			e := r.JSON["error"].(map[string]any)
			if msg, _ := e["message"].(string); msg == "" || strings.Contains(msg, "goroutine") {
				t.Errorf("message %q", msg)
			}
			if rid, _ := e["requestId"].(string); !strings.HasPrefix(rid, "req_") {
				t.Errorf("requestId %q", rid)
			}
			if tt.field != "" {
				details, _ := e["details"].([]any)
				found := false
				for _, d := range details {
					found = found || d.(map[string]any)["field"] == tt.field
				}
				if !found {
					t.Errorf("details %v do not name %s", details, tt.field)
				}
			}
		})
	}
	if len(tests) < 30 {
		t.Fatalf("only %d bad requests", len(tests))
	}
	t.Cleanup(func() {
		// Nothing was created or changed.
		list := c.must(200, "GET", "/v1/sandboxes?status=creating&status=running&status=failed&status=destroyed", nil).List()
		if len(list) != 1 || list[0]["id"] != id {
			t.Errorf("sandboxes after the bad requests: %v", list)
		}
		if ps := c.must(200, "GET", "/v1/projects", nil).List(); len(ps) != 1 {
			t.Errorf("projects after the bad requests: %v", ps)
		}
		after := c.must(200, "GET", "/v1/sandboxes/"+id, nil).Data()
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("target changed:\n%v\n%v", before, after)
		}
	})
}
