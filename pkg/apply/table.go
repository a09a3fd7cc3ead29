// Package apply writes approved change events to their target tables as deltas: it locks
// the target row, compares it with the new values and writes only the columns that
// differ. It also copies the initial snapshot of a table.
package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
)

// TableSpec says how one source table maps to its target table.
type TableSpec struct {
	Source change.TableName
	Target change.TableName
	// Key lists the source columns that identify a row; empty means the replica identity
	// the source sends.
	Key []string
	// Columns renames source columns to target columns; others keep their names.
	Columns map[string]string
	// Exclude lists source columns that are never written.
	Exclude []string
	// Transform computes the target values of transformed columns; nil when the table
	// has no transforms.
	Transform Transformer
	// Truncate is what a source TRUNCATE does: hold (the default), apply or ignore.
	Truncate string
	// ActorColumn names a source column whose new value is recorded as the actor.
	ActorColumn string
}

// targetName returns the target column a source column maps to, or "" when excluded.
func (s *TableSpec) targetName(source string) string {
	if slices.Contains(s.Exclude, source) {
		return ""
	}
	if renamed, ok := s.Columns[source]; ok {
		return renamed
	}
	return source
}

// Querier runs catalog queries; *pgx.Conn, *pgxpool.Pool and pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// targetColumn describes one column of a target table from the target's catalog.
type targetColumn struct {
	Name      string
	Type      string // format_type output, usable in a cast
	Generated bool   // a stored generated column, never written
	// IdentityAlways marks GENERATED ALWAYS AS IDENTITY: inserted with OVERRIDING
	// SYSTEM VALUE and never updated.
	IdentityAlways bool
}

// targetTable is a target table's writable shape.
type targetTable struct {
	Name       change.TableName
	Columns    []targetColumn
	byName     map[string]int
	uniqueKeys [][]string // column lists of unique indexes without predicates
}

func (t *targetTable) column(name string) (targetColumn, bool) {
	i, ok := t.byName[name]
	if !ok {
		return targetColumn{}, false
	}
	return t.Columns[i], true
}

// hasUniqueKey reports whether a unique index covers exactly these columns.
func (t *targetTable) hasUniqueKey(cols []string) bool {
	for _, k := range t.uniqueKeys {
		if len(k) == len(cols) && sameSet(k, cols) {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// ErrTargetMissing is returned when a configured target table does not exist.
var ErrTargetMissing = errors.New("target table does not exist")

const columnsSQL = `SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       a.attgenerated <> '', a.attidentity = 'a'
  FROM pg_attribute a
 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`

const uniqueKeysSQL = `SELECT array_agg(a.attname ORDER BY k.ord)
  FROM pg_index i
 CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
 GROUP BY i.indexrelid, i.indisprimary
 ORDER BY i.indisprimary DESC, count(*), i.indexrelid`

// loadTarget reads a target table's columns and unique keys from the target catalog.
func loadTarget(ctx context.Context, q Querier, name change.TableName) (*targetTable, error) {
	t := &targetTable{Name: name, byName: map[string]int{}}
	rows, err := q.Query(ctx, columnsSQL, name.Sanitize())
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return nil, fmt.Errorf("%w: %s: create it on the target with the source's columns, "+
				"or point tables[].target at an existing table", ErrTargetMissing, name)
		}
		return nil, fmt.Errorf("read columns of target table %s: %w", name, err)
	}
	for rows.Next() {
		var c targetColumn
		if err := rows.Scan(&c.Name, &c.Type, &c.Generated, &c.IdentityAlways); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of target table %s: %w", name, err)
		}
		t.byName[c.Name] = len(t.Columns)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of target table %s: %w", name, err)
	}

	rows, err = q.Query(ctx, uniqueKeysSQL, name.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("read unique keys of target table %s: %w", name, err)
	}
	t.uniqueKeys, err = pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return nil, fmt.Errorf("read unique keys of target table %s: %w", name, err)
	}
	return t, nil
}
