package sandbox

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// SSHKey is a registered public key. A sandbox created without sshKeys
// accepts every registered key; one created with sshKeys accepts the keys
// it names (by id) or holds (as public keys).
type SSHKey struct {
	ID          string
	Name        string
	Fingerprint string // "SHA256:…", exactly as ssh-keygen -l prints it
	KeyType     string // ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...
	PublicKey   string // "TYPE BASE64", the comment dropped
	CreatedAt   time.Time
	LastUsedAt  *time.Time
}

// ErrKeyExists is the store's answer to a key registered twice.
var ErrKeyExists = errors.New("ssh key already registered")

// ErrSSHDenied is the one answer to every refused SSH login: unknown
// sandbox, destroyed sandbox, wrong key and wrong password look the same,
// so a client cannot probe which sandboxes exist.
var ErrSSHDenied = errors.New("ssh access denied")

// SSHKeyStore keeps registered SSH keys. *store.Store implements it.
type SSHKeyStore interface {
	// InsertSSHKey fails with ErrKeyExists when the fingerprint is taken.
	InsertSSHKey(ctx context.Context, k *SSHKey) error
	GetSSHKey(ctx context.Context, id string) (*SSHKey, error)
	SSHKeyByFingerprint(ctx context.Context, fingerprint string) (*SSHKey, error)
	// ListSSHKeys returns every key, newest first.
	ListSSHKeys(ctx context.Context) ([]*SSHKey, error)
	CountSSHKeys(ctx context.Context) (int, error)
	DeleteSSHKey(ctx context.Context, id string) error
	TouchSSHKey(ctx context.Context, id string, at time.Time) error
}

// sshKeyTypes are the key types the hosted service registers.
var sshKeyTypes = map[string]bool{
	ssh.KeyAlgoRSA: true, ssh.KeyAlgoED25519: true,
	ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true, ssh.KeyAlgoECDSA521: true,
}

const (
	maxKeyName      = 128
	maxPublicKeyLen = 16 << 10 // an RSA-16384 key is under 3 KiB
)

// sshKeyState caches whether any key is registered: every sandbox object
// the API returns needs it (sshAuthMethod), and a list may hold hundreds.
type sshKeyState struct {
	mu    sync.Mutex
	known bool
	any   bool
	// dummyHash is compared against when a password login names no sandbox
	// with a password, so that answer takes as long as a wrong password.
	dummyOnce sync.Once
	dummyHash []byte
}

// parsePublicKey reads one authorized_keys-style line "TYPE BASE64 [comment]"
// of an allowed type. The messages are the hosted service's.
func parsePublicKey(text string) (ssh.PublicKey, error) {
	fields := strings.Fields(text)
	if len(fields) < 2 {
		return nil, errors.New("invalid SSH public key format: want \"TYPE BASE64 [comment]\", as in a .pub file")
	}
	if !sshKeyTypes[fields[0]] {
		return nil, fmt.Errorf("unsupported key type: %s (supported: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521)", truncate(fields[0], 64))
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, errors.New("invalid SSH public key: the key data is not base64")
	}
	pk, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, errors.New("invalid SSH public key: the key data does not parse")
	}
	if pk.Type() != fields[0] {
		return nil, fmt.Errorf("invalid SSH public key: the type says %s but the key data is %s", fields[0], pk.Type())
	}
	return pk, nil
}

// CreateSSHKey registers a public key under a name.
func (s *Service) CreateSSHKey(ctx context.Context, name, publicKey string) (*SSHKey, error) {
	var v invalid
	name = strings.TrimSpace(name)
	validText(&v, "name", name, maxKeyName)
	publicKey = strings.TrimSpace(publicKey)
	var pk ssh.PublicKey
	switch {
	case publicKey == "":
		v.add("publicKey", "is required")
	case len(publicKey) > maxPublicKeyLen:
		v.add("publicKey", "must be at most %d bytes", maxPublicKeyLen)
	default:
		var err error
		if pk, err = parsePublicKey(publicKey); err != nil {
			v.add("publicKey", "%v", err)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	k := &SSHKey{
		ID: "key_" + newID()[len("sandbox-"):], Name: name,
		Fingerprint: ssh.FingerprintSHA256(pk), KeyType: pk.Type(),
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), CreatedAt: s.now(),
	}
	if err := s.store.InsertSSHKey(ctx, k); err != nil {
		if errors.Is(err, ErrKeyExists) {
			return nil, conflict("SSH key with this fingerprint already exists (%s)", k.Fingerprint)
		}
		return nil, err
	}
	s.keys.forget()
	s.Publish(Change{Kind: "sshkey", ID: k.ID})
	return k, nil
}

// ListSSHKeys returns every registered key, newest first.
func (s *Service) ListSSHKeys(ctx context.Context) ([]*SSHKey, error) {
	return s.store.ListSSHKeys(ctx)
}

// DeleteSSHKey unregisters a key. Sandboxes that named it by id no longer
// accept it.
func (s *Service) DeleteSSHKey(ctx context.Context, id string) error {
	err := s.store.DeleteSSHKey(ctx, id)
	if errors.Is(err, ErrNoRecord) {
		return notFound("SSH key")
	}
	s.keys.forget()
	if err == nil {
		s.Publish(Change{Kind: "sshkey", ID: id})
	}
	return err
}

func (k *sshKeyState) forget() {
	k.mu.Lock()
	k.known = false
	k.mu.Unlock()
}

// sshKeysRegistered says whether any key is registered.
func (s *Service) sshKeysRegistered(ctx context.Context) bool {
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	if !s.keys.known {
		n, err := s.store.CountSSHKeys(ctx)
		if err != nil {
			return false
		}
		s.keys.known, s.keys.any = true, n > 0
	}
	return s.keys.any
}

// SSHAuthMethod says how a sandbox can be logged in to over SSH now:
// "key", "password", "key+password" or "none". A sandbox created without
// sshKeys counts as "key" while any key is registered, because every
// registered key may log in to it.
func (s *Service) SSHAuthMethod(ctx context.Context, sb *Sandbox) string {
	return sb.SSHAuthMethod(!sb.SSHKeysSet && s.sshKeysRegistered(ctx))
}

// checkSSHKeyRefs makes sure every key id in a create request is
// registered; public keys were checked by validateCreate.
func (s *Service) checkSSHKeyRefs(ctx context.Context, keys []string) error {
	var v invalid
	for i, k := range keys {
		k = strings.TrimSpace(k)
		if strings.ContainsAny(k, " \t") {
			continue
		}
		if _, err := s.store.GetSSHKey(ctx, k); err != nil {
			if !errors.Is(err, ErrNoRecord) {
				return err
			}
			v.addFix(RemedyRegisterSSHKey, fmt.Sprintf("sshKeys[%d]", i), "SSH key %s not found", truncate(k, 64))
		}
	}
	return v.err()
}

// loginTarget finds the sandbox an SSH username names; destroyed and
// destroying sandboxes are not logged in to.
func (s *Service) loginTarget(ctx context.Context, user string) (*Sandbox, error) {
	sb, err := s.Get(ctx, user)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrSSHDenied
		}
		return nil, err
	}
	if sb.Status == StatusDestroyed || sb.Status == StatusDestroying {
		return nil, ErrSSHDenied
	}
	return sb, nil
}

// AuthorizeSSHKey decides whether key may log in to the sandbox named by
// user (its id or name). The key is allowed when the sandbox's sshKeys hold
// it, as a public key or as the id of a registered key; or, when the
// sandbox was created without sshKeys, when it is any registered key. The
// answer is the sandbox, or ErrSSHDenied for every kind of refusal.
func (s *Service) AuthorizeSSHKey(ctx context.Context, user string, key ssh.PublicKey) (*Sandbox, error) {
	sb, err := s.loginTarget(ctx, user)
	if err != nil {
		return nil, err
	}
	fp := ssh.FingerprintSHA256(key)
	if !sb.SSHKeysSet {
		k, err := s.store.SSHKeyByFingerprint(ctx, fp)
		if errors.Is(err, ErrNoRecord) {
			return nil, ErrSSHDenied
		}
		if err != nil {
			return nil, err
		}
		s.keyUsed(ctx, k.ID)
		return sb, nil
	}
	offered := key.Marshal()
	for _, entry := range sb.SSHKeys {
		entry = strings.TrimSpace(entry)
		if strings.ContainsAny(entry, " \t") {
			pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(entry))
			if err == nil && subtle.ConstantTimeCompare(pk.Marshal(), offered) == 1 {
				return sb, nil
			}
			continue
		}
		k, err := s.store.GetSSHKey(ctx, entry)
		if errors.Is(err, ErrNoRecord) {
			continue // deleted since the sandbox was made
		}
		if err != nil {
			return nil, err
		}
		if k.Fingerprint == fp {
			s.keyUsed(ctx, k.ID)
			return sb, nil
		}
	}
	return nil, ErrSSHDenied
}

func (s *Service) keyUsed(ctx context.Context, id string) {
	if err := s.store.TouchSSHKey(context.WithoutCancel(ctx), id, s.now()); err != nil {
		s.log.Warn("could not record SSH key use", "key", id, "err", err)
	}
}

// AuthorizeSSHPassword decides whether password logs in to the sandbox named
// by user, against the rootPassword it was created with. Every refusal is
// ErrSSHDenied and takes about as long as a wrong password.
func (s *Service) AuthorizeSSHPassword(ctx context.Context, user, password string) (*Sandbox, error) {
	sb, err := s.loginTarget(ctx, user)
	if err != nil && !errors.Is(err, ErrSSHDenied) {
		return nil, err
	}
	if sb == nil || sb.RootPasswordHash == "" {
		s.keys.dummyOnce.Do(func() {
			s.keys.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("rtemu: no password here"), bcrypt.DefaultCost)
		})
		_ = bcrypt.CompareHashAndPassword(s.keys.dummyHash, []byte(password))
		return nil, ErrSSHDenied
	}
	if bcrypt.CompareHashAndPassword([]byte(sb.RootPasswordHash), []byte(password)) != nil {
		return nil, ErrSSHDenied
	}
	return sb, nil
}

// SSHTarget returns the sandbox that SSH connection info is asked for, and
// the first registered key its sshKeys name ("" for none). A sandbox still
// starting is waited for; a paused one is answered as it is (the connection
// wakes it); a failed, broken or destroyed one cannot be connected to: a
// conflict.
func (s *Service) SSHTarget(ctx context.Context, ref string) (*Sandbox, string, error) {
	var sb *Sandbox
	var err error
	if s.strictLifecycle {
		// As before the waits: answered at once in every live state.
		if sb, err = s.Get(ctx, ref); err == nil && (sb.Status == StatusDestroyed || sb.Status == StatusDestroying) {
			err = conflict("sandbox %s is %s", sb.ID, sb.Status)
		}
	} else {
		sb, err = s.usable(ctx, ref, use{by: "ssh", noWake: true})
	}
	if err != nil {
		return nil, "", err
	}
	for _, k := range sb.SSHKeys {
		if k = strings.TrimSpace(k); !strings.ContainsAny(k, " \t") {
			return sb, k, nil
		}
	}
	return sb, "", nil
}
