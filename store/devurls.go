package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// migrationDevURLs keeps the loopback port each dev URL was given, so that a
// URL stays the same across restarts of rtemu.
const migrationDevURLs = `CREATE TABLE dev_urls (
		sandbox_id TEXT NOT NULL,
		port       INTEGER NOT NULL,
		host_port  INTEGER NOT NULL,
		created_at TEXT NOT NULL,
		PRIMARY KEY (sandbox_id, port)
	);
	CREATE UNIQUE INDEX dev_urls_host_port ON dev_urls(host_port);`

// DevURLPort returns the host port given to a sandbox port;
// sandbox.ErrNoRecord when none was.
func (s *Store) DevURLPort(ctx context.Context, sandboxID string, port int) (int, error) {
	var hp int
	err := s.r.QueryRowContext(ctx, `SELECT host_port FROM dev_urls WHERE sandbox_id = ? AND port = ?`, sandboxID, port).Scan(&hp)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, sandbox.ErrNoRecord
	}
	if err != nil {
		return 0, fmt.Errorf("dev url port: %w", err)
	}
	return hp, nil
}

// SetDevURLPort records the host port a sandbox port is served on. The
// caller has just bound that host port, so any other record holding it is
// stale (a destroyed sandbox's) and is dropped.
func (s *Store) SetDevURLPort(ctx context.Context, u sandbox.DevURL) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set dev url port: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM dev_urls WHERE host_port = ? AND NOT (sandbox_id = ? AND port = ?)`,
		u.HostPort, u.SandboxID, u.Port); err != nil {
		return fmt.Errorf("set dev url port: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dev_urls(sandbox_id, port, host_port, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(sandbox_id, port) DO UPDATE SET host_port = excluded.host_port`,
		u.SandboxID, u.Port, u.HostPort, ts(time.Now())); err != nil {
		return fmt.Errorf("set dev url port: %w", err)
	}
	return tx.Commit()
}

// DevURLs lists the dev URLs of every sandbox not destroyed.
func (s *Store) DevURLs(ctx context.Context) ([]sandbox.DevURL, error) {
	urls, err := queryAll(ctx, s.r, func(row scanner) (sandbox.DevURL, error) {
		var u sandbox.DevURL
		return u, row.Scan(&u.SandboxID, &u.Port, &u.HostPort)
	}, `SELECT d.sandbox_id, d.port, d.host_port FROM dev_urls d
		JOIN sandboxes s ON s.id = d.sandbox_id WHERE s.status <> 'destroyed' ORDER BY d.created_at`)
	if err != nil {
		return nil, fmt.Errorf("dev urls: %w", err)
	}
	return urls, nil
}

// DeleteDevURLs forgets a sandbox's dev URLs.
func (s *Store) DeleteDevURLs(ctx context.Context, sandboxID string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM dev_urls WHERE sandbox_id = ?`, sandboxID); err != nil {
		return fmt.Errorf("delete dev urls: %w", err)
	}
	return nil
}
