package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// sshKeysSchema adds the registered SSH keys. The fingerprint is unique: the
// same key registered twice is a conflict, as on the hosted service.
const sshKeysSchema = `CREATE TABLE ssh_keys (
		seq          INTEGER PRIMARY KEY AUTOINCREMENT,
		id           TEXT NOT NULL UNIQUE,
		name         TEXT NOT NULL,
		fingerprint  TEXT NOT NULL UNIQUE,
		key_type     TEXT NOT NULL,
		public_key   TEXT NOT NULL,
		created_at   TEXT NOT NULL,
		last_used_at TEXT
	);`

const sshKeyCols = `id, name, fingerprint, key_type, public_key, created_at, last_used_at`

func scanSSHKey(row scanner) (*sandbox.SSHKey, error) {
	var (
		k        sandbox.SSHKey
		created  string
		lastUsed sql.NullString
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Fingerprint, &k.KeyType, &k.PublicKey, &created, &lastUsed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, sandbox.ErrNoRecord
		}
		return nil, err
	}
	var err error
	if k.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return nil, fmt.Errorf("ssh key %s: created_at: %w", k.ID, err)
	}
	if lastUsed.Valid {
		t, err := time.Parse(time.RFC3339Nano, lastUsed.String)
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: last_used_at: %w", k.ID, err)
		}
		k.LastUsedAt = &t
	}
	return &k, nil
}

// InsertSSHKey registers a key; sandbox.ErrKeyExists when one with the same
// fingerprint is registered already.
func (s *Store) InsertSSHKey(ctx context.Context, k *sandbox.SSHKey) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO ssh_keys(id, name, fingerprint, key_type, public_key, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, k.ID, k.Name, k.Fingerprint, k.KeyType, k.PublicKey, ts(k.CreatedAt))
	if isUnique(err) {
		return sandbox.ErrKeyExists
	}
	if err != nil {
		return fmt.Errorf("insert ssh key: %w", err)
	}
	return nil
}

// GetSSHKey reads one key by id.
func (s *Store) GetSSHKey(ctx context.Context, id string) (*sandbox.SSHKey, error) {
	return scanSSHKey(s.r.QueryRowContext(ctx, `SELECT `+sshKeyCols+` FROM ssh_keys WHERE id = ?`, id))
}

// SSHKeyByFingerprint reads the key with that fingerprint.
func (s *Store) SSHKeyByFingerprint(ctx context.Context, fingerprint string) (*sandbox.SSHKey, error) {
	return scanSSHKey(s.r.QueryRowContext(ctx, `SELECT `+sshKeyCols+` FROM ssh_keys WHERE fingerprint = ?`, fingerprint))
}

// ListSSHKeys returns every key, newest first.
func (s *Store) ListSSHKeys(ctx context.Context) ([]*sandbox.SSHKey, error) {
	keys, err := queryAll(ctx, s.r, scanSSHKey, `SELECT `+sshKeyCols+` FROM ssh_keys ORDER BY seq DESC`)
	if err != nil {
		return nil, fmt.Errorf("list ssh keys: %w", err)
	}
	return keys, nil
}

// CountSSHKeys says how many keys are registered.
func (s *Store) CountSSHKeys(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM ssh_keys`).Scan(&n)
	return n, err
}

// DeleteSSHKey removes a key; sandbox.ErrNoRecord when there is none.
func (s *Store) DeleteSSHKey(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM ssh_keys WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete ssh key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sandbox.ErrNoRecord
	}
	return nil
}

// TouchSSHKey records that a key was just used to log in.
func (s *Store) TouchSSHKey(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE ssh_keys SET last_used_at = ? WHERE id = ?`, ts(at), id)
	return err
}
