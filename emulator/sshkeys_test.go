package emulator_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/internal/testtool"
)

var keyIDRE = regexp.MustCompile(`^key_[a-z0-9]{12}$`)

// sshKeygen makes a key pair with OpenSSH's ssh-keygen and returns the
// public key line and the fingerprint ssh-keygen -lf prints for it.
func sshKeygen(t *testing.T, dir, typ string, bits int) (pub, fingerprint string) {
	t.Helper()
	testtool.Need(t, "openssh-client", "ssh-keygen")
	file := filepath.Join(dir, "id_"+typ+strconv.Itoa(bits))
	args := []string{"-q", "-t", typ, "-N", "", "-C", "me@laptop", "-f", file}
	if bits > 0 {
		args = append(args, "-b", strconv.Itoa(bits))
	}
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v %s", args, err, out)
	}
	b, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-lf", file+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	// "256 SHA256:… me@laptop (ED25519)"
	return strings.TrimSpace(string(b)), strings.Fields(string(out))[1]
}

// TestSSHKeysAPI: create (publicKey or public_key), list newest first,
// delete; the fingerprint is the one ssh-keygen -lf prints; bad keys are
// 400 and a key registered twice 409. Issue 3 point 1.
func TestSSHKeysAPI(t *testing.T) {
	t.Parallel()
	testtool.Need(t, "openssh-client", "ssh-keygen")
	c := newFakeClient(t)
	dir := t.TempDir()

	kinds := []struct {
		typ, keyType, field string
		bits                int
	}{
		{"ed25519", "ssh-ed25519", "publicKey", 0},
		{"rsa", "ssh-rsa", "public_key", 3072},
		{"ecdsa", "ecdsa-sha2-nistp256", "publicKey", 256},
		{"ecdsa", "ecdsa-sha2-nistp384", "public_key", 384},
		{"ecdsa", "ecdsa-sha2-nistp521", "publicKey", 521},
	}
	var ids []string
	pubs := map[string]string{}
	for i, k := range kinds {
		pub, fp := sshKeygen(t, dir, k.typ, k.bits)
		name := "key " + strconv.Itoa(i)
		d := c.must(http.StatusCreated, "POST", "/v1/ssh-keys", map[string]any{"name": name, k.field: pub}).Data()
		if !keyIDRE.MatchString(d["id"].(string)) || d["name"] != name || d["keyType"] != k.keyType ||
			d["fingerprint"] != fp || !timeRE.MatchString(d["createdAt"].(string)) {
			t.Errorf("%s: got %v, want fingerprint %s", k.keyType, d, fp)
		}
		if _, leaked := d["publicKey"]; leaked {
			t.Errorf("publicKey returned: %v", d)
		}
		ids = append(ids, d["id"].(string))
		pubs[d["id"].(string)] = pub
	}

	list := c.must(http.StatusOK, "GET", "/v1/ssh-keys", nil).List()
	if len(list) != len(ids) {
		t.Fatalf("list has %d keys, want %d", len(list), len(ids))
	}
	for i, k := range list {
		if want := ids[len(ids)-1-i]; k["id"] != want {
			t.Errorf("list[%d] = %v, want %s (newest first)", i, k["id"], want)
		}
	}

	// The same key again, under another name and comment: 409.
	dup := strings.Replace(pubs[ids[0]], "me@laptop", "other comment", 1)
	r := c.do("POST", "/v1/ssh-keys", map[string]any{"name": "again", "publicKey": dup})
	if r.Status != http.StatusConflict || r.ErrCode() != "conflict" {
		t.Errorf("duplicate: %d %s", r.Status, r.Body)
	}

	ed := strings.Fields(pubs[ids[0]])[1]
	bad := []struct {
		name, body, field, msg string
	}{
		{"unsupported type", `{"name":"x","publicKey":"ssh-dss AAAAB3NzaC1kc3MAAACBAP"}`, "publicKey", "unsupported key type: ssh-dss"},
		{"security key type", `{"name":"x","publicKey":"sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t"}`, "publicKey", "unsupported key type"},
		{"garbage", `{"name":"x","publicKey":"hello"}`, "publicKey", "invalid SSH public key format"},
		{"not base64", `{"name":"x","publicKey":"ssh-ed25519 !!!notbase64"}`, "publicKey", "not base64"},
		{"truncated blob", `{"name":"x","publicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"}`, "publicKey", "invalid SSH public key"},
		{"type mismatch", `{"name":"x","publicKey":"ssh-rsa ` + ed + `"}`, "publicKey", "the key data is ssh-ed25519"},
		{"private key", `{"name":"x","publicKey":"-----BEGIN OPENSSH PRIVATE KEY----- abc"}`, "publicKey", "unsupported key type"},
		{"no key", `{"name":"x"}`, "publicKey", "is required"},
		{"no name", `{"publicKey":"` + pubs[ids[0]] + `"}`, "name", "must not be empty"},
		{"long name", `{"name":"` + strings.Repeat("n", 129) + `","publicKey":"` + pubs[ids[0]] + `"}`, "name", "at most 128"},
		{"wrong type", `{"name":"x","publicKey":5}`, "publicKey", "must be a string"},
		{"both spellings differ", `{"name":"x","publicKey":"` + pubs[ids[0]] + `","public_key":"` + pubs[ids[1]] + `"}`, "publicKey", "differ"},
	}
	for _, tc := range bad {
		r := c.do("POST", "/v1/ssh-keys", tc.body)
		details, _ := r.JSON["error"].(map[string]any)["details"].([]any)
		var field, msg string
		if len(details) > 0 {
			field, _ = details[0].(map[string]any)["field"].(string)
			msg, _ = details[0].(map[string]any)["message"].(string)
		}
		if r.Status != http.StatusBadRequest || r.ErrCode() != "bad_request" || field != tc.field || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
		}
	}
	if n := len(c.must(http.StatusOK, "GET", "/v1/ssh-keys", nil).List()); n != len(ids) {
		t.Errorf("bad requests changed the list: %d keys", n)
	}

	// Delete: gone from the list; again is 404.
	d := c.must(http.StatusOK, "DELETE", "/v1/ssh-keys/"+ids[1], nil).Data()
	if d["success"] != true || d["id"] != ids[1] {
		t.Errorf("delete: %v", d)
	}
	for _, k := range c.must(http.StatusOK, "GET", "/v1/ssh-keys", nil).List() {
		if k["id"] == ids[1] {
			t.Error("deleted key still listed")
		}
	}
	if r := c.do("DELETE", "/v1/ssh-keys/"+ids[1], nil); r.Status != http.StatusNotFound || r.ErrCode() != "not_found" {
		t.Errorf("delete again: %d %s", r.Status, r.Body)
	}
	// Deleted, the key can be registered again.
	c.must(http.StatusCreated, "POST", "/v1/ssh-keys", map[string]any{"name": "back", "public_key": pubs[ids[1]]})
}

// TestSandboxSSHFields: sshKeys ids must be registered; sshAuthMethod,
// sshAccessConfigured and sshReady follow the rules; GET
// /v1/sandboxes/{id}/ssh gives a command that names the gateway.
// Issue 3 points 2 and 12.
func TestSandboxSSHFields(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t)
	dir := t.TempDir()

	// No key registered yet: a sandbox without sshKeys has no way in.
	plain := c.create(nil)
	if plain["sshAuthMethod"] != "none" || plain["sshAccessConfigured"] != false || plain["sshReady"] != true {
		t.Errorf("no keys registered: %v %v %v", plain["sshAuthMethod"], plain["sshAccessConfigured"], plain["sshReady"])
	}
	pub, _ := sshKeygen(t, dir, "ed25519", 0)
	keyID := c.must(http.StatusCreated, "POST", "/v1/ssh-keys", map[string]any{"name": "k", "publicKey": pub}).Data()["id"].(string)
	// Now every registered key may log in to it.
	if got := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+plain["id"].(string), nil).Data(); got["sshAuthMethod"] != "key" || got["sshAccessConfigured"] != true {
		t.Errorf("with a key registered: %v", got["sshAuthMethod"])
	}

	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"template":"base-ubuntu","sshKeys":["key_doesnotexist"]}`, "sshKeys[0]"},
		{`{"template":"base-ubuntu","sshKeys":["` + keyID + `","key_doesnotexist"]}`, "sshKeys[1]"},
		{`{"template":"base-ubuntu","sshKeys":["ssh-ed25519 AAAAnotakey"]}`, "sshKeys[0]"},
	} {
		r := c.do("POST", "/v1/sandboxes", tc.body)
		details, _ := r.JSON["error"].(map[string]any)["details"].([]any)
		if r.Status != http.StatusBadRequest || len(details) == 0 || details[0].(map[string]any)["field"] != tc.field {
			t.Errorf("%s: %d %s", tc.body, r.Status, r.Body)
		}
	}

	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"sshKeys": []string{keyID}}, "key"},
		{map[string]any{"sshKeys": []string{pub}, "rootPassword": "pw"}, "key+password"},
		{map[string]any{"sshKeys": []string{}, "rootPassword": "pw"}, "password"},
		{map[string]any{"sshKeys": []string{}}, "none"},
		{map[string]any{"rootPassword": "pw"}, "key+password"},
	} {
		tc.body["template"] = "base-ubuntu"
		d := c.must(http.StatusCreated, "POST", "/v1/sandboxes", tc.body).Data()
		if d["sshAuthMethod"] != tc.want || d["sshAccessConfigured"] != (tc.want != "none") || d["sshReady"] != false {
			t.Errorf("%v: sshAuthMethod %v, sshAccessConfigured %v, sshReady %v (creating)", tc.body, d["sshAuthMethod"], d["sshAccessConfigured"], d["sshReady"])
		}
	}

	_, port, _ := net.SplitHostPort(c.srv.SSHAddr)
	sb := c.create(map[string]any{"name": "connect-me", "sshKeys": []string{pub, keyID}})
	id := sb["id"].(string)
	for _, ref := range []string{id, "connect-me"} {
		d := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+ref+"/ssh", nil).Data()
		if d["host"] != "127.0.0.1" || d["port"] != float64(mustAtoi(t, port)) || d["user"] != id ||
			d["command"] != "ssh -p "+port+" "+id+"@127.0.0.1" || d["keyId"] != keyID {
			t.Errorf("ssh info by %s: %v", ref, d)
		}
	}
	if d := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+plain["id"].(string)+"/ssh", nil).Data(); d["keyId"] != nil {
		t.Errorf("keyId without sshKeys: %v", d["keyId"])
	}
	if r := c.do("GET", "/v1/sandboxes/sandbox-zzzzzzzzzzzz/ssh", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown sandbox: %d", r.Status)
	}

	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	if d := c.waitStatus(id, "paused"); d["sshReady"] != false {
		t.Errorf("paused: sshReady %v", d["sshReady"])
	}
	c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
	if r := c.do("GET", "/v1/sandboxes/"+id+"/ssh", nil); r.Status != http.StatusConflict {
		t.Errorf("destroyed sandbox: %d %s", r.Status, r.Body)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
