package sandbox

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Secret is a named value kept encrypted at rest (AES-256-GCM under a key
// in the data dir). Its value leaves the service only by Reveal and as the
// environment of an exec that names it; lists, errors and logs carry its
// metadata only.
type Secret struct {
	Name        string // [A-Z0-9_]+
	Scope       string // all, agents, tools, sandboxes
	Category    string // provider, tool, custom
	Description string
	OrgWide     bool
	// Sealed is the value encrypted: nonce then ciphertext and tag, with
	// the name as additional data (a sealed value copied to another name
	// does not open).
	Sealed    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SecretStore keeps secrets. *store.Store implements it.
type SecretStore interface {
	// PutSecret inserts a secret, or replaces the one of the same name
	// (keeping its CreatedAt); created says which.
	PutSecret(ctx context.Context, sec *Secret) (out *Secret, created bool, err error)
	// GetSecret is ErrNoRecord when there is none of that name.
	GetSecret(ctx context.Context, name string) (*Secret, error)
	// ListSecrets returns every secret (of a category, unless ""), by name.
	ListSecrets(ctx context.Context, category string) ([]*Secret, error)
	// DeleteSecret is ErrNoRecord when there is none of that name.
	DeleteSecret(ctx context.Context, name string) error
}

// The hosted API's values.
var (
	SecretScopes     = []string{"all", "agents", "tools", "sandboxes"}
	SecretCategories = []string{"provider", "tool", "custom"}
)

const (
	// MaxSecretValue bounds a secret's value, in bytes.
	MaxSecretValue   = 64 << 10
	maxSecretName    = 256
	maxSecretDescLen = 1024
	// SecretKeyFile is the key's file in the data dir.
	SecretKeyFile = "secrets.key"
)

var secretName = regexp.MustCompile(`^[A-Z0-9_]+$`)

// PutSecretParams is a create-or-rotate, decoded from the wire: nil fields
// are not given (a rotation keeps the secret's, a create takes the default).
type PutSecretParams struct {
	Name        string
	Value       *string
	Scope       *string
	Category    *string
	Description *string
	OrgWide     *bool
}

// secretKey is the service's AES-256 key, read from (or made in) the data
// dir at its first use.
type secretKey struct {
	mu   sync.Mutex
	aead cipher.AEAD
}

// NormalizeSecretName is a secret's name as the hosted API keeps it:
// trimmed and uppercased.
func NormalizeSecretName(name string) string { return strings.ToUpper(strings.TrimSpace(name)) }

func checkSecretName(v *invalid, field, name string) {
	switch {
	case name == "":
		v.add(field, "is required")
	case len(name) > maxSecretName:
		v.add(field, "must be at most %d characters", maxSecretName)
	case !secretName.MatchString(name):
		v.add(field, "must be letters, digits and underscores only (A-Z, 0-9, _; letters are uppercased)")
	}
}

func oneOf(v *invalid, field, got string, allowed []string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(field, "must be one of %s", strings.Join(allowed, ", "))
}

// PutSecret creates a secret, or rotates the one of the same name: its
// value is replaced, and so is each other field given. Bad input stores
// nothing. created says whether the secret is new.
func (s *Service) PutSecret(ctx context.Context, p PutSecretParams) (*Secret, bool, error) {
	name := NormalizeSecretName(p.Name)
	var v invalid
	checkSecretName(&v, "name", name)
	switch {
	case p.Value == nil || *p.Value == "":
		v.add("value", "is required")
	case len(*p.Value) > MaxSecretValue:
		v.add("value", "must be at most %d bytes (64 KiB)", MaxSecretValue)
	}
	if p.Scope != nil {
		oneOf(&v, "scope", *p.Scope, SecretScopes)
	}
	if p.Category != nil {
		oneOf(&v, "category", *p.Category, SecretCategories)
	}
	if p.Description != nil && len(*p.Description) > maxSecretDescLen {
		v.add("description", "must be at most %d characters", maxSecretDescLen)
	}
	if err := v.err(); err != nil {
		return nil, false, err
	}
	sec := &Secret{Name: name, Scope: "all", Category: "provider"}
	if old, err := s.store.GetSecret(ctx, name); err == nil {
		sec = old
	} else if !errors.Is(err, ErrNoRecord) {
		return nil, false, err
	}
	if p.Scope != nil {
		sec.Scope = *p.Scope
	}
	if p.Category != nil {
		sec.Category = *p.Category
	}
	if p.Description != nil {
		sec.Description = *p.Description
	}
	if p.OrgWide != nil {
		sec.OrgWide = *p.OrgWide
	}
	sealed, err := s.sealSecret(name, *p.Value)
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	sec.Sealed, sec.UpdatedAt = sealed, now
	if sec.CreatedAt.IsZero() {
		sec.CreatedAt = now
	}
	out, created, err := s.store.PutSecret(ctx, sec)
	if err != nil {
		return nil, false, err
	}
	typ, title := "secret.rotated", "Secret rotated"
	if created {
		typ, title = "secret.created", "Secret created"
	}
	s.secretEvent(ctx, name, typ, title)
	s.Publish(Change{Kind: "secret", ID: name}) // the dashboard's list
	return out, created, nil
}

// Secrets lists the secrets' metadata, of one category unless "".
func (s *Service) Secrets(ctx context.Context, category string) ([]*Secret, error) {
	if category != "" {
		var v invalid
		oneOf(&v, "category", category, SecretCategories)
		if err := v.err(); err != nil {
			return nil, err
		}
	}
	return s.store.ListSecrets(ctx, category)
}

// RevealSecret returns a secret's value; the reveal is recorded in the
// activity feed (the name, never the value).
func (s *Service) RevealSecret(ctx context.Context, name string) (*Secret, string, error) {
	sec, err := s.secret(ctx, name)
	if err != nil {
		return nil, "", err
	}
	value, err := s.openSecret(sec)
	if err != nil {
		return nil, "", err
	}
	s.secretEvent(ctx, sec.Name, "secret.revealed", "Secret revealed")
	return sec, value, nil
}

// DeleteSecret removes a secret.
func (s *Service) DeleteSecret(ctx context.Context, name string) (string, error) {
	name = NormalizeSecretName(name)
	if err := s.store.DeleteSecret(ctx, name); err != nil {
		if errors.Is(err, ErrNoRecord) {
			return "", notFound("Secret")
		}
		return "", err
	}
	s.secretEvent(ctx, name, "secret.deleted", "Secret deleted")
	s.Publish(Change{Kind: "secret", ID: name})
	return name, nil
}

func (s *Service) secret(ctx context.Context, name string) (*Secret, error) {
	sec, err := s.store.GetSecret(ctx, NormalizeSecretName(name))
	if errors.Is(err, ErrNoRecord) {
		return nil, notFound("Secret")
	}
	return sec, err
}

// secretEnv is the environment an exec's secrets give its command: each
// named secret, by its name. A name that is no secret, or a secret whose
// scope keeps it from sandboxes, is a bad request naming it.
func (s *Service) secretEnv(ctx context.Context, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var v invalid
	found := make([]*Secret, 0, len(names))
	for i, n := range names {
		field := fmt.Sprintf("secrets[%d]", i)
		name := NormalizeSecretName(n)
		checkSecretName(&v, field, name)
		if !secretName.MatchString(name) || len(name) > maxSecretName {
			continue
		}
		sec, err := s.store.GetSecret(ctx, name)
		switch {
		case errors.Is(err, ErrNoRecord):
			v.add(field, "no secret named %s", name)
		case err != nil:
			return nil, err
		case sec.Scope != "all" && sec.Scope != "sandboxes":
			v.add(field, "secret %s has scope %s; exec may use secrets of scope sandboxes or all", name, sec.Scope)
		default:
			found = append(found, sec)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	env := make(map[string]string, len(found))
	for _, sec := range found {
		value, err := s.openSecret(sec)
		if err != nil {
			return nil, err
		}
		env[sec.Name] = value
	}
	return env, nil
}

// secretNames lists an exec's secrets for its activity event, sorted.
func secretNames(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for n := range env {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *Service) secretEvent(ctx context.Context, name, typ, title string) {
	s.recordEvent(ctx, Event{ResourceType: resourceTypeSecret, ResourceID: name, Type: typ, Severity: "info", Title: title,
		Attributes: map[string]any{"name": name}})
}

func (s *Service) sealSecret(name, value string) ([]byte, error) {
	aead, err := s.secretAEAD()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(value)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(value), []byte(name)), nil
}

func (s *Service) openSecret(sec *Secret) (string, error) {
	aead, err := s.secretAEAD()
	if err != nil {
		return "", err
	}
	n := aead.NonceSize()
	if len(sec.Sealed) < n {
		return "", fmt.Errorf("secret %s: sealed value too short", sec.Name)
	}
	plain, err := aead.Open(nil, sec.Sealed[:n], sec.Sealed[n:], []byte(sec.Name))
	if err != nil {
		// Another data dir's key, or a changed key file: say which file,
		// never anything of the value.
		return "", &Error{Kind: KindConflict, Message: "secret " + sec.Name + " cannot be decrypted with the key in " +
			SecretKeyFile + " of the data dir (was the key file replaced?); set it again to rotate it"}
	}
	return string(plain), nil
}

// secretAEAD reads the key from the data dir, making it at the first use
// (32 random bytes, mode 0600). With no data dir (tests), the key lives in
// memory for the service's life.
func (s *Service) secretAEAD() (cipher.AEAD, error) {
	s.secKey.mu.Lock()
	defer s.secKey.mu.Unlock()
	if s.secKey.aead != nil {
		return s.secKey.aead, nil
	}
	var key []byte
	var err error
	if s.dataDir == "" {
		key = make([]byte, 32)
		_, err = rand.Read(key)
	} else {
		key, err = loadOrMakeKey(filepath.Join(s.dataDir, SecretKeyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if s.secKey.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return s.secKey.aead, nil
}

// loadOrMakeKey reads a 32-byte key from path, or makes one there. A key
// is made in a temporary file and linked into place, so two rtemus (or a
// crash half-way) never leave a short key or two different ones.
func loadOrMakeKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	key = make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		tmp.Close()
		return nil, err
	}
	_, werr := tmp.Write(key)
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return readKey(path) // whichever key won
}

func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("%s is readable by others and cannot be made private: %w", path, err)
		}
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s holds %d bytes, not a 32-byte key", path, len(key))
	}
	return key, nil
}
