package sshgw_test

import (
	"net/http"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// TestKeyAuth: a key the sandbox allows logs in, by sandbox id and by name,
// with golang.org/x/crypto/ssh and with OpenSSH; a key it does not allow is
// refused. Issue 3 point 2.
func TestKeyAuth(t *testing.T) {
	t.Parallel()
	h := newFakeHarness(t)
	edKey, ecKey, rsaKey, stranger := newKey(t, "ed25519"), newKey(t, "ecdsa"), newKey(t, "rsa"), newKey(t, "ed25519")
	edID := h.registerKey("laptop", edKey)
	h.registerKey("desktop", ecKey)

	anyKey := h.sandbox(map[string]any{"name": "any-key"}) // sshKeys omitted: every registered key
	byID := h.sandbox(map[string]any{"name": "by-id", "sshKeys": []string{edID}})
	inline := h.sandbox(map[string]any{"name": "inline", "sshKeys": []string{rsaKey.authorized}})
	noKeys := h.sandbox(map[string]any{"name": "no-keys", "sshKeys": []string{}, "rootPassword": "pw-only"})

	tests := []struct {
		name  string
		user  string
		key   *testKey
		allow bool
	}{
		{"registered ed25519, sshKeys omitted, by id", anyKey, edKey, true},
		{"registered ed25519, sshKeys omitted, by name", "any-key", edKey, true},
		{"registered ecdsa, sshKeys omitted", "any-key", ecKey, true},
		{"unregistered key, sshKeys omitted", anyKey, rsaKey, false},
		{"key named by id", byID, edKey, true},
		{"key named by id, by sandbox name", "by-id", edKey, true},
		{"registered key the sandbox does not name", byID, ecKey, false},
		{"inline public key", inline, rsaKey, true},
		{"inline public key, by name", "inline", rsaKey, true},
		{"registered key, sandbox with inline key only", inline, edKey, false},
		{"sshKeys empty", noKeys, edKey, false},
		{"stranger", "any-key", stranger, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := h.dial(tc.user, gossh.PublicKeys(tc.key.signer))
			if tc.allow {
				if err != nil {
					t.Fatalf("x/crypto: %v", err)
				}
				defer c.Close()
				// The session runs in the sandbox the username named.
				if r := run(t, c, "hostname", nil); strings.TrimSpace(r.stdout) == "" || r.code != 0 {
					t.Fatalf("hostname: %+v", r)
				}
			} else if err == nil {
				c.Close()
				t.Fatal("x/crypto: logged in, want refused")
			}
			r := openssh(t, h.ssh("ssh", append(withKey(tc.key), target(tc.user, h), "echo in")...), nil)
			if tc.allow && (r.code != 0 || r.stdout != "in\n") {
				t.Fatalf("OpenSSH: %+v", r)
			}
			if !tc.allow && (r.code != 255 || !strings.Contains(r.stderr, "Permission denied")) {
				t.Fatalf("OpenSSH: want Permission denied, got %+v", r)
			}
		})
	}

	// The username picks the sandbox: each lands in its own container.
	hostOf := func(user string) string {
		c := h.mustDial(user, gossh.PublicKeys(edKey.signer))
		return strings.TrimSpace(run(t, c, "hostname", nil).stdout)
	}
	if a, b := hostOf(anyKey), hostOf(byID); a == b || !strings.HasSuffix(anyKey, a) || !strings.HasSuffix(byID, b) {
		t.Errorf("hostnames %q %q for %s %s", a, b, anyKey, byID)
	}

	// sshAuthMethod follows the rules; sshReady is true while running.
	for id, want := range map[string]string{anyKey: "key", byID: "key", inline: "key", noKeys: "password"} {
		d := h.mustAPI(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil)
		if d["sshAuthMethod"] != want || d["sshAccessConfigured"] != true || d["sshReady"] != true {
			t.Errorf("%s: sshAuthMethod %v sshAccessConfigured %v sshReady %v, want %s/true/true",
				d["name"], d["sshAuthMethod"], d["sshAccessConfigured"], d["sshReady"], want)
		}
	}

	// A deleted key no longer logs in, whichever way the sandbox took it.
	h.mustAPI(http.StatusOK, "DELETE", "/v1/ssh-keys/"+edID, nil)
	for _, user := range []string{anyKey, byID} {
		if c, err := h.dial(user, gossh.PublicKeys(edKey.signer)); err == nil {
			c.Close()
			t.Errorf("%s: deleted key still logs in", user)
		}
	}
}

// TestPasswordAuth: rootPassword logs in with OpenSSH (through sshpass) and
// x/crypto; it is never returned by the API. Issue 3 point 5.
func TestPasswordAuth(t *testing.T) {
	needSSHPass(t)
	t.Parallel()
	h := newFakeHarness(t)
	id := h.sandbox(map[string]any{"name": "pw-box", "rootPassword": "correct horse"})
	d := h.mustAPI(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil)
	if _, ok := d["rootPassword"]; ok || d["sshAuthMethod"] != "password" {
		t.Fatalf("sandbox %v", d)
	}

	c := h.mustDial(id, gossh.Password("correct horse"))
	if r := run(t, c, "echo $USER; exit 4", nil); r.stdout != "root\n" || r.code != 4 {
		t.Fatalf("x/crypto: %+v", r)
	}
	for _, user := range []string{id, "pw-box"} {
		r := openssh(t, h.sshpass("correct horse", "ssh", target(user, h), "echo via-password"), nil)
		if r.code != 0 || r.stdout != "via-password\n" {
			t.Fatalf("sshpass ssh %s: %+v", user, r)
		}
	}
	if r := openssh(t, h.sshpass("wrong horse", "ssh", target(id, h), "true"), nil); r.code == 0 {
		t.Fatalf("wrong password logged in: %+v", r)
	}
}

// TestRefusalsIndistinguishable: a wrong password, another sandbox's key,
// an unknown sandbox and a destroyed sandbox are all refused, and the
// client cannot tell them apart. Issue 3 point 6.
func TestRefusalsIndistinguishable(t *testing.T) {
	needSSHPass(t)
	t.Parallel()
	h := newFakeHarness(t)
	mine, theirs := newKey(t, "ed25519"), newKey(t, "ed25519")
	box := h.sandbox(map[string]any{"name": "mine", "sshKeys": []string{mine.authorized}, "rootPassword": "s3cret"})
	other := h.sandbox(map[string]any{"sshKeys": []string{theirs.authorized}})
	gone := h.sandbox(map[string]any{"sshKeys": []string{mine.authorized}, "rootPassword": "s3cret"})
	h.mustAPI(http.StatusOK, "DELETE", "/v1/sandboxes/"+gone, nil)

	// Each case once with a key and once with a password, so every refusal
	// is compared with one that offered the same methods.
	type attempt struct {
		name, user string
		key        *testKey
		password   string
	}
	keyCases := []attempt{
		{"another sandbox's key", other, mine, ""},
		{"unknown sandbox", "sandbox-zzzzzzzzzzzz", mine, ""},
		{"unknown name", "no-such-box", mine, ""},
		{"destroyed sandbox", gone, mine, ""},
		{"wrong key", box, theirs, ""},
	}
	pwCases := []attempt{
		{"wrong password", box, nil, "wrong"},
		{"password, unknown sandbox", "sandbox-zzzzzzzzzzzz", nil, "s3cret"},
		{"password, destroyed sandbox", gone, nil, "s3cret"},
		{"password, sandbox without one", other, nil, "s3cret"},
	}
	for _, cases := range [][]attempt{keyCases, pwCases} {
		var firstCrypto, firstOpenSSH string
		for _, a := range cases {
			var auth gossh.AuthMethod
			var cmd = h.sshpass(a.password, "ssh", target(a.user, h), "true")
			if a.key != nil {
				auth = gossh.PublicKeys(a.key.signer)
				cmd = h.ssh("ssh", append(withKey(a.key), target(a.user, h), "true")...)
			} else {
				auth = gossh.Password(a.password)
			}
			c, err := h.dial(a.user, auth)
			if err == nil {
				c.Close()
				t.Fatalf("%s: x/crypto logged in", a.name)
			}
			r := openssh(t, cmd, nil)
			if r.code == 0 {
				t.Fatalf("%s: OpenSSH logged in", a.name)
			}
			// The username is the only part of the message that varies.
			got := strings.ReplaceAll(r.stderr, a.user, "USER")
			if firstCrypto == "" {
				firstCrypto, firstOpenSSH = err.Error(), got
				t.Logf("refusal: %q / %q", firstCrypto, strings.TrimSpace(firstOpenSSH))
				continue
			}
			if err.Error() != firstCrypto || got != firstOpenSSH {
				t.Errorf("%s refused differently:\n x/crypto %q vs %q\n OpenSSH %q vs %q", a.name, err, firstCrypto, got, firstOpenSSH)
			}
		}
	}
	// The right key and password still work.
	c := h.mustDial("mine", gossh.PublicKeys(mine.signer))
	if r := run(t, c, "echo ok", nil); r.stdout != "ok\n" {
		t.Fatalf("%+v", r)
	}
	if r := openssh(t, h.sshpass("s3cret", "ssh", target(box, h), "echo ok"), nil); r.stdout != "ok\n" {
		t.Fatalf("%+v", r)
	}
}
