package sandbox_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// Secrets survive a restart on the same data dir (the key is kept there,
// private); a key file replaced behind rtemu's back makes a reveal fail
// with an error that says so and holds nothing of the value.
func TestSecretKeyKeptInDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, func(c *sandbox.Config) { c.DataDir = dir })
	const value = "value-4f2a-never-shown"
	if _, created, err := e.svc.PutSecret(e.ctx, sandbox.PutSecretParams{Name: "k", Value: ptr(value)}); err != nil || !created {
		t.Fatalf("PutSecret = %v, %v", created, err)
	}
	keyFile := filepath.Join(dir, sandbox.SecretKeyFile)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	sealed, err := e.st.GetSecret(e.ctx, "K")
	if err != nil || bytes.Contains(sealed.Sealed, []byte(value)) || len(sealed.Sealed) != 12+len(value)+16 {
		t.Fatalf("stored: %d bytes, %v", len(sealed.Sealed), err)
	}

	// A second service on the same data dir and store: a restart. A key
	// file others may read is made private again.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	again := sandbox.New(sandbox.Config{Store: e.st, Engine: fake.New(testImage), InstanceID: e.st.InstanceID(), DataDir: dir})
	if _, got, err := again.RevealSecret(e.ctx, "K"); err != nil || got != value {
		t.Fatalf("reveal after a restart = %q, %v", got, err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode after a restart: %v", fi.Mode().Perm())
	}

	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	other := sandbox.New(sandbox.Config{Store: e.st, Engine: fake.New(testImage), InstanceID: e.st.InstanceID(), DataDir: dir})
	_, got, err := other.RevealSecret(e.ctx, "K")
	if !errors.Is(err, sandbox.ErrConflict) || got != "" || strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), sandbox.SecretKeyFile) {
		t.Fatalf("reveal under another key = %q, %v", got, err)
	}
}

// A sealed value is bound to its name: copied to another name in the
// store, it does not open.
func TestSealedSecretBoundToName(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sandbox.Config) { c.DataDir = t.TempDir() })
	if _, _, err := e.svc.PutSecret(e.ctx, sandbox.PutSecretParams{Name: "A", Value: ptr("a-value")}); err != nil {
		t.Fatal(err)
	}
	a, err := e.st.GetSecret(e.ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	a.Name = "B"
	if _, _, err := e.st.PutSecret(e.ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, got, err := e.svc.RevealSecret(e.ctx, "B"); err == nil || got != "" {
		t.Fatalf("a sealed value moved to another name opened: %q, %v", got, err)
	}
}
