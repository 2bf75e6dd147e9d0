package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// preparedReads are the reads every API request makes (find a sandbox by id
// or name), prepared once: parsing the SQL on each call was a third of a
// GET's cost in the bench's profile (BENCHMARKS.md).
type preparedReads struct {
	byID, byName *sql.Stmt
}

func (p *preparedReads) prepare(ctx context.Context, db *sql.DB) (err error) {
	if p.byID, err = db.PrepareContext(ctx, `SELECT `+sandboxCols+` FROM sandboxes WHERE id = ?`); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	if p.byName, err = db.PrepareContext(ctx, `SELECT `+sandboxCols+` FROM sandboxes WHERE name = ? AND status <> 'destroyed'`); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func (p *preparedReads) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{p.byID, p.byName} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
