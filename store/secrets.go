package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// secretsSchema adds secrets, keyed by name. The value is stored sealed
// (sandbox/secrets.go encrypts it); this package never sees it in clear.
const secretsSchema = `CREATE TABLE secrets (
		name        TEXT PRIMARY KEY,
		scope       TEXT NOT NULL,
		category    TEXT NOT NULL,
		description TEXT NOT NULL DEFAULT '',
		org_wide    INTEGER NOT NULL DEFAULT 0,
		sealed      BLOB NOT NULL,
		created_at  TEXT NOT NULL,
		updated_at  TEXT NOT NULL
	);`

const secretCols = `name, scope, category, description, org_wide, sealed, created_at, updated_at`

func scanSecret(row scanner) (*sandbox.Secret, error) {
	var (
		sec              sandbox.Secret
		created, updated string
	)
	if err := row.Scan(&sec.Name, &sec.Scope, &sec.Category, &sec.Description, &sec.OrgWide, &sec.Sealed, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, sandbox.ErrNoRecord
		}
		return nil, err
	}
	var err error
	if sec.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return nil, fmt.Errorf("secret %s: created_at: %w", sec.Name, err)
	}
	if sec.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
		return nil, fmt.Errorf("secret %s: updated_at: %w", sec.Name, err)
	}
	return &sec, nil
}

// PutSecret inserts a secret or replaces the one of the same name, keeping
// its created_at; created says whether it was new.
func (s *Store) PutSecret(ctx context.Context, sec *sandbox.Secret) (*sandbox.Secret, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("put secret: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM secrets WHERE name = ?`, sec.Name).Scan(&n); err != nil {
		return nil, false, fmt.Errorf("put secret: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO secrets(`+secretCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET scope = excluded.scope, category = excluded.category,
			description = excluded.description, org_wide = excluded.org_wide, sealed = excluded.sealed,
			updated_at = excluded.updated_at`,
		sec.Name, sec.Scope, sec.Category, sec.Description, sec.OrgWide, sec.Sealed, ts(sec.CreatedAt), ts(sec.UpdatedAt)); err != nil {
		return nil, false, fmt.Errorf("put secret: %w", err)
	}
	out, err := scanSecret(tx.QueryRowContext(ctx, `SELECT `+secretCols+` FROM secrets WHERE name = ?`, sec.Name))
	if err != nil {
		return nil, false, fmt.Errorf("put secret: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("put secret: %w", err)
	}
	return out, n == 0, nil
}

// GetSecret reads one secret by name.
func (s *Store) GetSecret(ctx context.Context, name string) (*sandbox.Secret, error) {
	return scanSecret(s.r.QueryRowContext(ctx, `SELECT `+secretCols+` FROM secrets WHERE name = ?`, name))
}

// ListSecrets returns every secret, of one category unless "", by name.
func (s *Store) ListSecrets(ctx context.Context, category string) ([]*sandbox.Secret, error) {
	q, args := `SELECT `+secretCols+` FROM secrets`, []any{}
	if category != "" {
		q += ` WHERE category = ?`
		args = append(args, category)
	}
	out, err := queryAll(ctx, s.r, scanSecret, q+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret removes a secret; sandbox.ErrNoRecord when there is none.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM secrets WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sandbox.ErrNoRecord
	}
	return nil
}
