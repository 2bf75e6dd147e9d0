package emulator_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// TestSecrets: /v1/secrets as the hosted API serves it. Create, rotate,
// list (metadata only, filtered by category), reveal (recorded in the
// activity feed), delete; the value encrypted at rest under a key file of
// mode 0600, and in no list, error or log.
func TestSecrets(t *testing.T) {
	t.Parallel()
	var log emulatortest.Buffer
	c := newFakeClient(t, emulatortest.WithLog(&log))
	const v1, v2 = "sk-live-FIRST-4e1f0c", "sk-live-SECOND-9a7d2b"

	r := c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "openai_key", "value": v1, "description": "for the agent"})
	created := r.Data()
	for k, want := range map[string]any{"name": "OPENAI_KEY", "scope": "all", "category": "provider", "description": "for the agent", "orgWide": false} {
		if created[k] != want {
			t.Errorf("created %s = %v, want %v", k, created[k], want)
		}
	}
	if _, ok := created["value"]; ok {
		t.Error("the create's answer carries the value")
	}
	// Same name, any case: a rotation, which keeps what it does not set.
	rot := c.must(http.StatusOK, "POST", "/v1/secrets", map[string]any{"name": "OpenAI_Key", "value": v2, "scope": "sandboxes"}).Data()
	if rot["scope"] != "sandboxes" || rot["description"] != "for the agent" || rot["createdAt"] != created["createdAt"] {
		t.Errorf("rotated: %v; created %v", rot, created)
	}
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "GH_TOKEN", "value": "ghp_x", "category": "tool", "scope": "agents", "orgWide": true})

	list := c.must(http.StatusOK, "GET", "/v1/secrets", nil)
	if names := namesOf(list.List()); names != "GH_TOKEN,OPENAI_KEY" {
		t.Errorf("list: %s", names)
	}
	if names := namesOf(c.must(http.StatusOK, "GET", "/v1/secrets?category=tool", nil).List()); names != "GH_TOKEN" {
		t.Errorf("list ?category=tool: %s", names)
	}
	if names := namesOf(c.must(http.StatusOK, "GET", "/v1/secrets?category=custom", nil).List()); names != "" {
		t.Errorf("list ?category=custom: %s", names)
	}
	c.must(http.StatusBadRequest, "GET", "/v1/secrets?category=everything", nil)

	got := c.must(http.StatusOK, "POST", "/v1/secrets/openai_key/reveal", nil).Data()
	if got["name"] != "OPENAI_KEY" || got["value"] != v2 {
		t.Fatalf("reveal: %v", got)
	}
	feed := c.must(http.StatusOK, "GET", "/v1/activity?resource_type=secret&resource_id=OPENAI_KEY", nil).Data()["events"].([]any)
	var types []string
	for _, e := range feed {
		ev := e.(map[string]any)
		types = append(types, ev["eventType"].(string))
		if ev["sandboxId"] != nil || ev["actorUserId"] == nil {
			t.Errorf("secret event: %v", ev)
		}
	}
	if strings.Join(types, ",") != "secret.revealed,secret.rotated,secret.created" {
		t.Errorf("the secret's events, newest first: %v", types)
	}

	c.must(http.StatusOK, "DELETE", "/v1/secrets/GH_TOKEN", nil)
	c.must(http.StatusNotFound, "DELETE", "/v1/secrets/GH_TOKEN", nil)
	c.must(http.StatusNotFound, "POST", "/v1/secrets/GH_TOKEN/reveal", nil)

	// At rest: the key file is private and no file of the data dir holds
	// a value in clear; no answer but the reveal carried it, nor the log.
	fi, err := os.Stat(filepath.Join(c.srv.DataDir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("secrets.key: mode %v, %d bytes; want 0600, 32", fi.Mode().Perm(), fi.Size())
	}
	_ = filepath.WalkDir(c.srv.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, v := range []string{v1, v2} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a secret's value in clear", path)
			}
		}
		return nil
	})
	for _, body := range [][]byte{list.Body, r.Body, []byte(log.String())} {
		if bytes.Contains(body, []byte(v1)) || bytes.Contains(body, []byte(v2)) {
			t.Errorf("a value in %s", body)
		}
	}
}

func namesOf(items []map[string]any) string {
	var out []string
	for _, it := range items {
		out = append(out, it["name"].(string))
	}
	return strings.Join(out, ",")
}

// TestSecretsBadInput: each bad create is a 400 naming the field, stores
// nothing, and never echoes the value.
func TestSecretsBadInput(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	const value = "VALUE-never-echoed-51c3"
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"empty name", map[string]any{"name": "", "value": value}, "name"},
		{"no name", map[string]any{"value": value}, "name"},
		{"blank name", map[string]any{"name": "  ", "value": value}, "name"},
		{"dash in name", map[string]any{"name": "my-key", "value": value}, "name"},
		{"space in name", map[string]any{"name": "MY KEY", "value": value}, "name"},
		{"name too long", map[string]any{"name": strings.Repeat("A", 257), "value": value}, "name"},
		{"no value", map[string]any{"name": "K"}, "value"},
		{"empty value", map[string]any{"name": "K", "value": ""}, "value"},
		{"value over 64 KiB", map[string]any{"name": "K", "value": value + strings.Repeat("x", 64<<10)}, "value"},
		{"unknown scope", map[string]any{"name": "K", "value": value, "scope": "everyone"}, "scope"},
		{"scope in capitals", map[string]any{"name": "K", "value": value, "scope": "ALL"}, "scope"},
		{"unknown category", map[string]any{"name": "K", "value": value, "category": "secret"}, "category"},
		{"value not a string", map[string]any{"name": "K", "value": 42}, "value"},
		{"orgWide not a bool", map[string]any{"name": "K", "value": value, "orgWide": "yes"}, "orgWide"},
		{"description not a string", map[string]any{"name": "K", "value": value, "description": 1}, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.must(http.StatusBadRequest, "POST", "/v1/secrets", tc.body)
			if r.ErrCode() != "bad_request" || !strings.Contains(string(r.Body), `"field":"`+tc.field+`"`) {
				t.Errorf("answer %s; want bad_request naming %s", r.Body, tc.field)
			}
			if bytes.Contains(r.Body, []byte(value)) {
				t.Errorf("the error echoes the value: %s", r.Body)
			}
		})
	}
	// A value of exactly 64 KiB is fine; then the list holds it alone.
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "BIG", "value": strings.Repeat("v", 64<<10)})
	if names := namesOf(c.must(http.StatusOK, "GET", "/v1/secrets", nil).List()); names != "BIG" {
		t.Fatalf("secrets after the bad creates: %q, want BIG alone", names)
	}
}

// TestExecSecrets: exec's secrets are in that command's environment, and
// only in it; an unknown name, or a secret whose scope keeps it from
// sandboxes, is a 400 naming it.
func TestExecSecrets(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "API_TOKEN", "value": "tok-123"})
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "SB_ONLY", "value": "sb-456", "scope": "sandboxes"})
	c.must(http.StatusCreated, "POST", "/v1/secrets", map[string]any{"name": "AGENT_ONLY", "value": "ag-789", "scope": "agents"})
	id := c.create(nil)["id"].(string)
	exec := "/v1/sandboxes/" + id + "/exec"

	res := c.exec(id, map[string]any{"command": "printenv API_TOKEN && printenv SB_ONLY", "secrets": []string{"API_TOKEN", "sb_only"}})
	if res["stdout"] != "tok-123\nsb-456\n" {
		t.Errorf("with secrets: %q", res["stdout"])
	}
	// Over the exec's own env of the same name.
	res = c.exec(id, map[string]any{"command": "printenv API_TOKEN", "env": map[string]string{"API_TOKEN": "plain"}, "secrets": []string{"API_TOKEN"}})
	if res["stdout"] != "tok-123\n" {
		t.Errorf("secret over env: %q", res["stdout"])
	}
	if res := c.exec(id, map[string]any{"command": "printenv API_TOKEN"}); res["stdout"] != "" {
		t.Errorf("a later exec without secrets sees %q", res["stdout"])
	}
	for _, tc := range []struct {
		secrets []string
		says    string
	}{
		{[]string{"API_TOKEN", "NOPE"}, "NOPE"},
		{[]string{"AGENT_ONLY"}, "AGENT_ONLY has scope agents"},
		{[]string{"bad-name"}, "secrets[0]"},
	} {
		r := c.must(http.StatusBadRequest, "POST", exec, map[string]any{"command": "true", "secrets": tc.secrets})
		if !strings.Contains(string(r.Body), tc.says) || strings.Contains(string(r.Body), "tok-123") {
			t.Errorf("secrets %v: %s; want it to say %q", tc.secrets, r.Body, tc.says)
		}
	}
	c.must(http.StatusBadRequest, "POST", exec, map[string]any{"command": "true", "secrets": "API_TOKEN"})
	// The exec's event names the secrets, never their values.
	for _, e := range c.activity(id) {
		if e["eventType"] != "exec" {
			continue
		}
		if a := e["attributes"].(map[string]any); a["secrets"] != nil {
			if s, _ := a["secrets"].([]any); len(s) == 0 || s[0] != "API_TOKEN" {
				t.Errorf("exec event's secrets: %v", a["secrets"])
			}
		}
	}
}
