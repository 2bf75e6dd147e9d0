package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// workspacesSchema is the migration that adds workspaces. Their files live
// in folders named by id under the data dir; only the metadata is here.
const workspacesSchema = `CREATE TABLE workspaces (
		seq              INTEGER PRIMARY KEY AUTOINCREMENT,
		id               TEXT NOT NULL UNIQUE,
		slug             TEXT NOT NULL UNIQUE,
		name             TEXT NOT NULL,
		created_at       TEXT NOT NULL,
		updated_at       TEXT NOT NULL,
		last_accessed_at TEXT
	);`

const workspaceCols = `seq, id, slug, name, created_at, updated_at, last_accessed_at`

func scanWorkspace(row scanner) (*sandbox.Workspace, error) {
	var (
		w                sandbox.Workspace
		created, updated string
		accessed         sql.NullString
	)
	if err := row.Scan(&w.Seq, &w.ID, &w.Slug, &w.Name, &created, &updated, &accessed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, sandbox.ErrNoRecord
		}
		return nil, err
	}
	var err error
	if w.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return nil, err
	}
	if w.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
		return nil, err
	}
	if accessed.Valid {
		t, err := time.Parse(time.RFC3339Nano, accessed.String)
		if err != nil {
			return nil, err
		}
		w.LastAccessedAt = &t
	}
	return &w, nil
}

// InsertWorkspace writes a new workspace and sets its Seq. A taken id or
// slug is sandbox.ErrIDTaken or sandbox.ErrSlugTaken.
func (s *Store) InsertWorkspace(ctx context.Context, w *sandbox.Workspace) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert workspace: %w", err)
	}
	defer tx.Rollback()
	// Which of the two is taken is asked first, in the same (immediate)
	// transaction, rather than read from a constraint error's text.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM workspaces WHERE id = ?`, w.ID).Scan(&n); err != nil {
		return fmt.Errorf("insert workspace: %w", err)
	}
	if n > 0 {
		return sandbox.ErrIDTaken
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM workspaces WHERE slug = ?`, w.Slug).Scan(&n); err != nil {
		return fmt.Errorf("insert workspace: %w", err)
	}
	if n > 0 {
		return sandbox.ErrSlugTaken
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO workspaces(id, slug, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		w.ID, w.Slug, w.Name, ts(w.CreatedAt), ts(w.UpdatedAt))
	if err != nil {
		return fmt.Errorf("insert workspace: %w", err)
	}
	if w.Seq, err = res.LastInsertId(); err != nil {
		return err
	}
	return tx.Commit()
}

// GetWorkspace reads one workspace by id.
func (s *Store) GetWorkspace(ctx context.Context, id string) (*sandbox.Workspace, error) {
	return scanWorkspace(s.r.QueryRowContext(ctx, `SELECT `+workspaceCols+` FROM workspaces WHERE id = ?`, id))
}

// WorkspaceBySlug reads one workspace by slug.
func (s *Store) WorkspaceBySlug(ctx context.Context, slug string) (*sandbox.Workspace, error) {
	return scanWorkspace(s.r.QueryRowContext(ctx, `SELECT `+workspaceCols+` FROM workspaces WHERE slug = ?`, slug))
}

// ListWorkspaces returns every workspace, newest first.
func (s *Store) ListWorkspaces(ctx context.Context) ([]*sandbox.Workspace, error) {
	ws, err := queryAll(ctx, s.r, scanWorkspace, `SELECT `+workspaceCols+` FROM workspaces ORDER BY seq DESC`)
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	return ws, nil
}

// RenameWorkspace sets a workspace's name.
func (s *Store) RenameWorkspace(ctx context.Context, id, name string, at time.Time) (*sandbox.Workspace, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE workspaces SET name = ?, updated_at = ? WHERE id = ?`, name, ts(at), id)
	if err != nil {
		return nil, fmt.Errorf("rename workspace: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, sandbox.ErrNoRecord
	}
	return s.GetWorkspace(ctx, id)
}

// TouchWorkspace records a file access, at most once a minute so that a
// burst of file calls is not a burst of writes.
func (s *Store) TouchWorkspace(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE workspaces SET last_accessed_at = ?
		WHERE id = ? AND (last_accessed_at IS NULL OR last_accessed_at < ?)`,
		ts(at), id, ts(at.Add(-time.Minute)))
	if err != nil {
		return fmt.Errorf("touch workspace: %w", err)
	}
	return nil
}

// DeleteWorkspace removes a workspace's record.
func (s *Store) DeleteWorkspace(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM workspaces WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete workspace: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sandbox.ErrNoRecord
	}
	return nil
}
