package sshgw_test

import (
	"strings"
	"testing"
)

// TestCiphers: OpenSSH's client, with its own default preferences, gets
// AES (the gateway does not offer chacha20-poly1305, which x/crypto
// computes without assembly: two thirds of sshd's rate through ssh -L); a client
// that asks for AES-GCM gets it; one that will take only chacha20-poly1305
// is told there is no cipher in common.
func TestCiphers(t *testing.T) {
	t.Parallel()
	h := newFakeHarness(t)
	key := newKey(t, "ed25519")
	id := h.sandbox(map[string]any{"sshKeys": []string{key.authorized}})
	tests := []struct {
		name   string
		args   []string
		cipher string // "": the login is refused
	}{
		{"OpenSSH's defaults", nil, "aes128-ctr"},
		{"AES-GCM asked for", []string{"-c", "aes128-gcm@openssh.com"}, "aes128-gcm@openssh.com"},
		{"AES-256-CTR asked for", []string{"-c", "aes256-ctr"}, "aes256-ctr"},
		{"only chacha20-poly1305", []string{"-c", "chacha20-poly1305@openssh.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(append(append([]string{"-v"}, withKey(key)...), tt.args...), target(id, h), "echo in")
			r := openssh(t, h.ssh("ssh", args...), nil)
			if tt.cipher == "" {
				if r.code == 0 || !strings.Contains(r.stderr, "no matching cipher found") {
					t.Fatalf("logged in, or refused for another reason: %+v", r)
				}
				return
			}
			if r.code != 0 || r.stdout != "in\n" {
				t.Fatalf("ssh: %+v", r)
			}
			if want := "kex: server->client cipher: " + tt.cipher + " "; !strings.Contains(r.stderr, want) {
				t.Fatalf("stderr lacks %q:\n%s", want, r.stderr)
			}
		})
	}
}
