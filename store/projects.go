package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// projectsSchema adds projects, with the default project every rtemu has
// from the start (as every hosted organisation gets one). Its id is made
// here, once, and kept in meta, so a reset brings the same project back.
const projectsSchema = `CREATE TABLE projects (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		id         TEXT NOT NULL UNIQUE,
		name       TEXT NOT NULL,
		color      TEXT NOT NULL,
		is_default INTEGER NOT NULL DEFAULT 0,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	INSERT INTO meta(key, value) VALUES ('default_project',
		lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
		substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))));
	` + seedDefaultProject + `
	-- Sandboxes of an older rtemu may name projects that were never made
	-- (projectId was stored as given): each such project is made, so every
	-- projectId names one.
	INSERT OR IGNORE INTO projects(id, name, color, is_default, created_at, updated_at)
	SELECT DISTINCT json_extract(data, '$.projectId'), 'Project ' || substr(json_extract(data, '$.projectId'), 1, 8),
		'` + sandbox.DefaultProjectColor + `', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
	FROM sandboxes WHERE json_extract(data, '$.projectId') IS NOT NULL;`

// seedDefaultProject (re)makes the default project from its id in meta.
const seedDefaultProject = `INSERT OR IGNORE INTO projects(id, name, color, is_default, created_at, updated_at)
	SELECT value, '` + sandbox.DefaultProjectName + `', '` + sandbox.DefaultProjectColor + `', 1,
		strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
	FROM meta WHERE key = 'default_project';`

// defaultProjectIDSQL is the default project's id, as an SQL expression.
const defaultProjectIDSQL = `(SELECT value FROM meta WHERE key = 'default_project')`

// sandboxesInProjectsSchema puts every sandbox in a project: those an
// older rtemu left without one go to the default project, as creates
// now do.
const sandboxesInProjectsSchema = `UPDATE sandboxes SET data = json_set(data, '$.projectId', ` + defaultProjectIDSQL + `)
	WHERE coalesce(json_extract(data, '$.projectId'), '') = '';`

const projectCols = `seq, id, name, color, is_default, created_at, updated_at`

func scanProject(row scanner) (*sandbox.Project, error) {
	var (
		p                sandbox.Project
		created, updated string
	)
	if err := row.Scan(&p.Seq, &p.ID, &p.Name, &p.Color, &p.IsDefault, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, sandbox.ErrNoRecord
		}
		return nil, err
	}
	var err error
	if p.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return nil, fmt.Errorf("project %s: created_at: %w", p.ID, err)
	}
	if p.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
		return nil, fmt.Errorf("project %s: updated_at: %w", p.ID, err)
	}
	return &p, nil
}

// InsertProject writes a new project and sets its Seq.
func (s *Store) InsertProject(ctx context.Context, p *sandbox.Project) error {
	res, err := s.w.ExecContext(ctx, `INSERT INTO projects(id, name, color, is_default, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)`,
		p.ID, p.Name, p.Color, ts(p.CreatedAt), ts(p.UpdatedAt))
	if err != nil {
		return fmt.Errorf("insert project: %w", err)
	}
	p.Seq, err = res.LastInsertId()
	return err
}

// GetProject reads one project by id.
func (s *Store) GetProject(ctx context.Context, id string) (*sandbox.Project, error) {
	return scanProject(s.r.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
}

// ListProjects returns every project, oldest (the default) first.
func (s *Store) ListProjects(ctx context.Context) ([]*sandbox.Project, error) {
	out, err := queryAll(ctx, s.r, scanProject, `SELECT `+projectCols+` FROM projects ORDER BY is_default DESC, seq`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// UpdateProject reads, changes and writes one project in a transaction.
func (s *Store) UpdateProject(ctx context.Context, id string, fn func(*sandbox.Project) error) (*sandbox.Project, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("update project: %w", err)
	}
	defer tx.Rollback()
	p, err := scanProject(tx.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	if err := fn(p); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projects SET name = ?, color = ?, updated_at = ? WHERE id = ?`,
		p.Name, p.Color, ts(p.UpdatedAt), id); err != nil {
		return nil, fmt.Errorf("update project: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("update project: %w", err)
	}
	return p, nil
}

// DeleteProject deletes a project in one transaction with what depends on
// it. The sandboxes not destroyed that are assigned to it are returned;
// unless unassign is set, any of them makes it sandbox.ErrProjectInUse and
// nothing changes. With unassign every sandbox assigned to it (destroyed
// ones too, so no record names a project that is gone) is unassigned.
func (s *Store) DeleteProject(ctx context.Context, id string, unassign bool) ([]string, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("delete project: %w", err)
	}
	defer tx.Rollback()
	if _, err := scanProject(tx.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id)); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM sandboxes WHERE json_extract(data, '$.projectId') = ? AND status <> 'destroyed' ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("delete project: %w", err)
	}
	users := []string{}
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			rows.Close()
			return nil, err
		}
		users = append(users, sid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(users) > 0 && !unassign {
		return users, sandbox.ErrProjectInUse
	}
	// Every sandbox is in a project: the deleted one's go to the default.
	if _, err := tx.ExecContext(ctx, `UPDATE sandboxes SET data = json_set(data, '$.projectId', `+defaultProjectIDSQL+`)
		WHERE json_extract(data, '$.projectId') = ?`, id); err != nil {
		return nil, fmt.Errorf("delete project: unassign sandboxes: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM projects WHERE id = ?`, id); err != nil {
		return nil, fmt.Errorf("delete project: %w", err)
	}
	defer s.cache.clear() // the unassigned sandboxes' records changed
	return users, tx.Commit()
}
