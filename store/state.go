package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// Schema is the database schema this rtemu writes (its migrations' count).
func (s *Store) Schema() int { return len(migrations) }

// PrepareRecords opens a database file of a state archive, migrates it to
// this schema (refusing a newer one, as Open does) and applies fn to every
// sandbox record in it, destroyed ones too.
func (s *Store) PrepareRecords(ctx context.Context, file string, fn func(*sandbox.Sandbox) error) error {
	db, err := Open(ctx, file)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.r.QueryContext(ctx, `SELECT id FROM sandboxes ORDER BY seq`)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := db.UpdateSandbox(ctx, id, fn); err != nil {
			return err
		}
	}
	return nil
}

// SnapshotTo writes a copy of the whole database to file (which must not
// exist) as of one moment: VACUUM INTO reads in one transaction, so a write
// committed meanwhile is in it whole or not at all.
func (s *Store) SnapshotTo(ctx context.Context, file string) error {
	if _, err := s.r.ExecContext(ctx, `VACUUM INTO ?`, file); err != nil {
		return fmt.Errorf("snapshot the records: %w", err)
	}
	return nil
}

// ReplaceFrom makes every table but meta (this data dir's instance id) hold
// what the same table of the database file holds, in one transaction: the
// records are all the old ones or all the new ones, whatever happens. The
// file must be of this schema (open it with Open first, which migrates it).
func (s *Store) ReplaceFrom(ctx context.Context, file string) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("load records: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS seed`, file); err != nil {
		return fmt.Errorf("load records: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE seed`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("load records: %w", err)
	}
	defer tx.Rollback()
	tables, err := userTables(ctx, tx)
	if err != nil {
		return err
	}
	for _, t := range tables {
		q := `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
		if _, err := tx.ExecContext(ctx, `DELETE FROM main.`+q); err != nil {
			return fmt.Errorf("load records: %s: %w", t, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO main.`+q+` SELECT * FROM seed.`+q); err != nil {
			return fmt.Errorf("load records: %s: %w", t, err)
		}
	}
	// The seed's default project is this data dir's now (a reset makes
	// it again by this id).
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = (SELECT id FROM main.projects WHERE is_default = 1 LIMIT 1)
		WHERE key = 'default_project' AND EXISTS (SELECT 1 FROM main.projects WHERE is_default = 1)`); err != nil {
		return fmt.Errorf("load records: default project: %w", err)
	}
	defer s.cache.clear()
	return tx.Commit()
}

// userTables lists the tables of the main database a reset or a load
// replaces: all but meta and SQLite's own.
func userTables(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT IN ('meta', 'sqlite_sequence') AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		tables = append(tables, n)
	}
	return tables, rows.Err()
}
