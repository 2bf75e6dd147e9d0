// Package store keeps rtemu's state in SQLite (modernc.org/sqlite, WAL). It
// is the only package with SQL; it takes and returns the service's domain
// values.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// Store is an open database. Writes go through one connection (SQLite has
// one writer at a time, and this removes SQLITE_BUSY in practice); reads use
// a small pool that WAL lets run beside the writer.
type Store struct {
	w, r     *sql.DB
	instance string
	reads    preparedReads
	cache    sandboxCache
	decoded  decodeCache // of lists (cache.go)
	lists    listCache
	// version is one connection kept for PRAGMA data_version (the list
	// cache's check), its own so its count is comparable from call to call.
	versionMu sync.Mutex
	version   *sql.Conn
	versionDB *sql.DB
}

// Open opens (creating if needed) the database file and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	// modernc reads pragmas only in the _pragma=name(value) form; mattn-style
	// _busy_timeout is silently ignored. synchronous(NORMAL) in WAL mode
	// keeps every committed transaction through a crash of the process.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r}
	if s.versionDB, err = sql.Open("sqlite", dsn); err == nil {
		s.version, err = s.versionDB.Conn(ctx)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.instance, err = s.instanceID(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.reads.prepare(ctx, s.r); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.version != nil {
		errs = append(errs, s.version.Close())
	}
	if s.versionDB != nil {
		errs = append(errs, s.versionDB.Close())
	}
	return errors.Join(append(errs, s.reads.close(), s.r.Close(), s.w.Close())...)
}

// dataVersion is SQLite's data_version on the store's own connection for
// it: it changes whenever a commit (of any connection, in any process) came
// since the last call.
func (s *Store) dataVersion(ctx context.Context) (int64, bool) {
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	var v int64
	if err := s.version.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return 0, false
	}
	return v, true
}

// InstanceID is this database's id, made at its creation: the containers of
// one data dir carry it as a label.
func (s *Store) InstanceID() string { return s.instance }

var migrations = []string{
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE sandboxes (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		id         TEXT NOT NULL UNIQUE,
		name       TEXT,
		template   TEXT NOT NULL,
		status     TEXT NOT NULL,
		tags       TEXT NOT NULL DEFAULT '[]',
		data       TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(name) WHERE name IS NOT NULL AND status <> 'destroyed';
	CREATE INDEX sandboxes_status ON sandboxes(status);
	CREATE TABLE events (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		id         TEXT NOT NULL UNIQUE,
		sandbox_id TEXT NOT NULL,
		type       TEXT NOT NULL,
		severity   TEXT NOT NULL,
		title      TEXT NOT NULL,
		attributes TEXT NOT NULL,
		created_at TEXT NOT NULL
	);
	CREATE INDEX events_sandbox ON events(sandbox_id, seq);`,
	migrationDevURLs,
	workspacesSchema,
	sshKeysSchema,
	projectsSchema,
	eventResourcesSchema,
	secretsSchema,
	sandboxesInProjectsSchema,
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("the database is of a newer rtemu (schema %d; this one knows %d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return tx.Commit()
}

func (s *Store) instanceID(ctx context.Context) (string, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO meta(key, value) VALUES ('instance', ?)`, hex.EncodeToString(b)); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	var id string
	err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance'`).Scan(&id)
	return id, err
}

// record is the JSON kept in sandboxes.data: every field not queried by SQL.
type record struct {
	Image            string            `json:"image"`
	Resources        resources         `json:"resources"`
	Env              map[string]string `json:"env"`
	Mounts           []mount           `json:"mounts"`
	Metadata         json.RawMessage   `json:"metadata,omitempty"`
	ProjectID        string            `json:"projectId,omitempty"`
	IdleTimeout      int               `json:"idleTimeout"`
	SSHKeys          []string          `json:"sshKeys,omitempty"`
	SSHKeysSet       bool              `json:"sshKeysSet,omitempty"`
	RootPasswordHash string            `json:"rootPasswordHash,omitempty"`
	Error            string            `json:"error,omitempty"`
	PausedAt         *time.Time        `json:"pausedAt,omitempty"`
	PausedBy         string            `json:"pausedBy,omitempty"`
	ResumedAt        *time.Time        `json:"resumedAt,omitempty"`
	DestroyedAt      *time.Time        `json:"destroyedAt,omitempty"`
	LastActivityAt   *time.Time        `json:"lastActivityAt,omitempty"`
	IP               string            `json:"ip,omitempty"`
	Progress         string            `json:"progress,omitempty"`
	Container        string            `json:"container,omitempty"`
}

type resources struct {
	VCPUs  int    `json:"vcpus"`
	Memory string `json:"memory"`
	Disk   string `json:"disk"`
}

type mount struct {
	WorkspaceID string `json:"workspaceId"`
	Path        string `json:"path"`
	ReadOnly    bool   `json:"readOnly"`
}

const sandboxCols = `seq, id, name, template, status, tags, data, created_at, updated_at`

func encodeSandbox(sb *sandbox.Sandbox) (tags, data string, err error) {
	r := record{
		Image: sb.Image, Resources: resources(sb.Resources), Env: sb.Env, Metadata: sb.Metadata,
		ProjectID: sb.ProjectID, IdleTimeout: sb.IdleTimeout, SSHKeys: sb.SSHKeys, SSHKeysSet: sb.SSHKeysSet,
		RootPasswordHash: sb.RootPasswordHash, Error: sb.Error, PausedAt: sb.PausedAt, PausedBy: sb.PausedBy, ResumedAt: sb.ResumedAt,
		DestroyedAt: sb.DestroyedAt, LastActivityAt: sb.LastActivityAt, IP: sb.IP, Progress: sb.Progress,
		Container: sb.Container,
	}
	for _, m := range sb.Mounts {
		r.Mounts = append(r.Mounts, mount(m))
	}
	t := sb.Tags
	if t == nil {
		t = []string{}
	}
	tb, err := json.Marshal(t)
	if err != nil {
		return "", "", err
	}
	db, err := json.Marshal(r)
	return string(tb), string(db), err
}

type scanner interface{ Scan(...any) error }

// queryAll runs a query on the read pool and scans every row with scan.
// The result is never nil, so an empty list encodes as [].
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanSandbox(row scanner) (*sandbox.Sandbox, error) { return scanSandboxWith(row, nil) }

// scanSandboxWith scans a row, taking the decoded tags and data from dc when
// it has them for exactly these columns (dc may be nil).
func scanSandboxWith(row scanner, dc *decodeCache) (*sandbox.Sandbox, error) {
	var (
		sb                          sandbox.Sandbox
		name                        sql.NullString
		status, tags, data, created string
		updated                     string
	)
	if err := row.Scan(&sb.Seq, &sb.ID, &name, &sb.Template, &status, &tags, &data, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, sandbox.ErrNoRecord
		}
		return nil, err
	}
	sb.Name, sb.Status = name.String, sandbox.Status(status)
	var r record
	if d, ok := dc.get(sb.ID, tags, data); ok {
		// Shared with the cache: copied below where the caller could change it.
		r, sb.Tags = d.rec, slices.Clone(d.tagList)
		r.Env, r.Metadata, r.SSHKeys = maps.Clone(r.Env), slices.Clone(r.Metadata), slices.Clone(r.SSHKeys)
		r.PausedAt, r.ResumedAt, r.DestroyedAt, r.LastActivityAt = cloneTime(r.PausedAt), cloneTime(r.ResumedAt), cloneTime(r.DestroyedAt), cloneTime(r.LastActivityAt)
	} else {
		if err := json.Unmarshal([]byte(tags), &sb.Tags); err != nil {
			return nil, fmt.Errorf("sandbox %s: tags: %w", sb.ID, err)
		}
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			return nil, fmt.Errorf("sandbox %s: data: %w", sb.ID, err)
		}
		if dc != nil {
			kept := &decodedCols{tags: tags, data: data, tagList: slices.Clone(sb.Tags), rec: r}
			kept.rec.Env, kept.rec.Metadata, kept.rec.SSHKeys = maps.Clone(r.Env), slices.Clone(r.Metadata), slices.Clone(r.SSHKeys)
			kept.rec.PausedAt, kept.rec.ResumedAt = cloneTime(r.PausedAt), cloneTime(r.ResumedAt)
			kept.rec.DestroyedAt, kept.rec.LastActivityAt = cloneTime(r.DestroyedAt), cloneTime(r.LastActivityAt)
			dc.put(sb.ID, kept)
		}
	}
	sb.Image, sb.Resources, sb.Env, sb.Metadata = r.Image, sandbox.Resources(r.Resources), r.Env, r.Metadata
	sb.ProjectID, sb.IdleTimeout, sb.SSHKeys, sb.SSHKeysSet = r.ProjectID, r.IdleTimeout, r.SSHKeys, r.SSHKeysSet
	sb.RootPasswordHash, sb.Error, sb.PausedBy, sb.IP, sb.Progress = r.RootPasswordHash, r.Error, r.PausedBy, r.IP, r.Progress
	sb.Container = r.Container
	sb.PausedAt, sb.ResumedAt, sb.DestroyedAt, sb.LastActivityAt = r.PausedAt, r.ResumedAt, r.DestroyedAt, r.LastActivityAt
	sb.Mounts = make([]sandbox.Mount, 0, len(r.Mounts))
	for _, m := range r.Mounts {
		sb.Mounts = append(sb.Mounts, sandbox.Mount(m))
	}
	if sb.Env == nil {
		sb.Env = map[string]string{}
	}
	var err error
	if sb.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return nil, err
	}
	if sb.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
		return nil, err
	}
	return &sb, nil
}

// scanListed scans a row of a list, through the decode cache.
func (s *Store) scanListed(row scanner) (*sandbox.Sandbox, error) {
	return scanSandboxWith(row, &s.decoded)
}

func nullName(n string) any {
	if n == "" {
		return nil
	}
	return n
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// isUnique says whether err is a UNIQUE constraint violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// InsertSandbox writes a new sandbox and sets its Seq.
func (s *Store) InsertSandbox(ctx context.Context, sb *sandbox.Sandbox) error {
	tags, data, err := encodeSandbox(sb)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO sandboxes(id, name, template, status, tags, data, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		sb.ID, nullName(sb.Name), sb.Template, string(sb.Status), tags, data, ts(sb.CreatedAt), ts(sb.UpdatedAt))
	if isUnique(err) {
		return sandbox.ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("insert sandbox: %w", err)
	}
	sb.Seq, err = res.LastInsertId()
	s.cache.wrote(sb.ID, nil)
	return err
}

// GetSandbox reads one sandbox by id (from the cache when it has it).
func (s *Store) GetSandbox(ctx context.Context, id string) (*sandbox.Sandbox, error) {
	sb, gen, ok := s.cache.get(id)
	if ok {
		return sb, nil
	}
	sb, err := scanSandbox(s.reads.byID.QueryRowContext(ctx, id))
	if err == nil {
		s.cache.fill(sb, gen)
	}
	return sb, err
}

// SandboxByName reads the live (not destroyed) sandbox with that name.
func (s *Store) SandboxByName(ctx context.Context, name string) (*sandbox.Sandbox, error) {
	return scanSandbox(s.reads.byName.QueryRowContext(ctx, name))
}

// UpdateSandbox reads, changes and writes one sandbox in a transaction.
func (s *Store) UpdateSandbox(ctx context.Context, id string, fn func(*sandbox.Sandbox) error) (*sandbox.Sandbox, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("update sandbox: %w", err)
	}
	defer tx.Rollback()
	sb, err := scanSandbox(tx.QueryRowContext(ctx, `SELECT `+sandboxCols+` FROM sandboxes WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	if err := fn(sb); err != nil {
		return nil, err
	}
	tags, data, err := encodeSandbox(sb)
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE sandboxes SET name = ?, status = ?, tags = ?, data = ?, updated_at = ? WHERE id = ?`,
		nullName(sb.Name), string(sb.Status), tags, data, ts(sb.UpdatedAt), id)
	if isUnique(err) {
		return nil, sandbox.ErrNameTaken
	}
	if err != nil {
		return nil, fmt.Errorf("update sandbox: %w", err)
	}
	if err := tx.Commit(); err != nil {
		s.cache.wrote(id, nil)
		return nil, fmt.Errorf("update sandbox: %w", err)
	}
	s.cache.wrote(id, sb)
	return sb, nil
}

// ListSandboxes returns up to f.Limit sandboxes older than afterSeq (0: from
// the newest), newest first, and whether more follow.
func (s *Store) ListSandboxes(ctx context.Context, f sandbox.ListFilter, afterSeq int64) ([]*sandbox.Sandbox, bool, error) {
	var (
		where []string
		args  []any
	)
	if len(f.Statuses) == 0 {
		where = append(where, `status <> 'destroyed'`)
	} else {
		ph := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, `status IN (`+strings.Join(ph, ",")+`)`)
	}
	for _, t := range f.Tags {
		where = append(where, `EXISTS (SELECT 1 FROM json_each(sandboxes.tags) WHERE value = ?)`)
		args = append(args, t)
	}
	if f.Template != "" {
		where = append(where, `template = ?`)
		args = append(args, f.Template)
	}
	if f.ExcludeTemplate != "" {
		where = append(where, `template <> ?`)
		args = append(args, f.ExcludeTemplate)
	}
	if f.ProjectID != "" {
		where = append(where, `json_extract(data, '$.projectId') = ?`)
		args = append(args, f.ProjectID)
	}
	if afterSeq > 0 {
		where = append(where, `seq < ?`)
		args = append(args, afterSeq)
	}
	args = append(args, f.Limit+1)
	query := `SELECT ` + sandboxCols + ` FROM sandboxes WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq DESC LIMIT ?`
	return s.cachedList(ctx, fmt.Sprintf("%s %q", query, args), func() ([]*sandbox.Sandbox, bool, error) {
		out, err := queryAll(ctx, s.r, s.scanListed, query, args...)
		if err != nil {
			return nil, false, fmt.Errorf("list sandboxes: %w", err)
		}
		more := len(out) > f.Limit
		if more {
			out = out[:f.Limit]
		}
		return out, more, nil
	})
}

// cachedList is a list from the list cache, or from load (kept for the
// next read) when something was committed since it was cached.
func (s *Store) cachedList(ctx context.Context, key string, load func() ([]*sandbox.Sandbox, bool, error)) ([]*sandbox.Sandbox, bool, error) {
	version, versioned := s.dataVersion(ctx)
	if out, more, ok := s.lists.get(key, version); ok && versioned {
		return out, more, nil
	}
	out, more, err := load()
	if err == nil && versioned {
		s.lists.put(key, version, out, more)
	}
	return out, more, err
}

// LiveSandboxes returns every sandbox that is not destroyed, oldest first.
func (s *Store) LiveSandboxes(ctx context.Context) ([]*sandbox.Sandbox, error) {
	const query = `SELECT ` + sandboxCols + ` FROM sandboxes WHERE status <> 'destroyed' ORDER BY seq`
	out, _, err := s.cachedList(ctx, query, func() ([]*sandbox.Sandbox, bool, error) {
		out, err := queryAll(ctx, s.r, s.scanListed, query)
		if err != nil {
			return nil, false, fmt.Errorf("live sandboxes: %w", err)
		}
		return out, false, nil
	})
	return out, err
}

// AddEvent appends to a sandbox's activity feed.
func (s *Store) AddEvent(ctx context.Context, ev sandbox.Event) error {
	attrs, err := json.Marshal(ev.Attributes)
	if err != nil {
		return err
	}
	rt, rid := eventResource(ev)
	_, err = s.w.ExecContext(ctx, `INSERT INTO events(id, sandbox_id, type, severity, title, attributes, created_at, resource_type, resource_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, ev.ID, ev.SandboxID, ev.Type, ev.Severity, ev.Title, string(attrs), ts(ev.CreatedAt), rt, rid)
	if err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	return nil
}

// AddEvents appends events to activity feeds in one transaction.
func (s *Store) AddEvents(ctx context.Context, evs []sandbox.Event) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add events: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO events(id, sandbox_id, type, severity, title, attributes, created_at, resource_type, resource_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("add events: %w", err)
	}
	defer st.Close()
	for _, ev := range evs {
		attrs, err := json.Marshal(ev.Attributes)
		if err != nil {
			return err
		}
		rt, rid := eventResource(ev)
		if _, err := st.ExecContext(ctx, ev.ID, ev.SandboxID, ev.Type, ev.Severity, ev.Title, string(attrs), ts(ev.CreatedAt), rt, rid); err != nil {
			return fmt.Errorf("add events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add events: %w", err)
	}
	return nil
}

// Reset deletes every row of every table but meta (which holds this data
// dir's instance id). The tables are read from the schema, so a table a
// later migration adds is cleared too.
func (s *Store) Reset(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	defer tx.Rollback()
	tables, err := userTables(ctx, tx)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	for _, t := range tables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM "`+strings.ReplaceAll(t, `"`, `""`)+`"`); err != nil {
			return fmt.Errorf("reset %s: %w", t, err)
		}
	}
	// The default project is there from the start, so after a reset too.
	if _, err := tx.ExecContext(ctx, seedDefaultProject); err != nil {
		return fmt.Errorf("reset: default project: %w", err)
	}
	defer s.cache.clear()
	return tx.Commit()
}
