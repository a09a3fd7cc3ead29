package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/labstack/echo/v4"

	"github.com/datasense/changesync/pkg/store/dbgen"
)

// RowDiff is the body of GET /diff/{row_key}: every target write of one row, oldest first,
// and the row's current values in the target table.
type RowDiff struct {
	RowKey      string      `json:"row_key"`
	SourceTable string      `json:"source_table"`
	TargetTable string      `json:"target_table"`
	Changes     []RowChange `json:"changes"`
	// Current contains the target row's columns as text, or is null when the row does not
	// exist now.
	Current map[string]*string `json:"current"`
}

// RowChange is one target write of a row, column by column.
type RowChange struct {
	ChangeID    uuid.UUID    `json:"change_id"`
	SyncLogID   uuid.UUID    `json:"sync_log_id"`
	Op          string       `json:"op"`
	SyncedAt    time.Time    `json:"synced_at"`
	PerformedBy string       `json:"performed_by"`
	UndoStatus  string       `json:"undo_status"`
	UndoRequest *uuid.UUID   `json:"undo_request"` // set on the write of an undo
	Columns     []ColumnDiff `json:"columns"`
}

// ColumnDiff is the value of one column before and after a write, null for SQL NULL.
type ColumnDiff struct {
	Column string          `json:"column"`
	Old    json.RawMessage `json:"old"`
	New    json.RawMessage `json:"new"`
}

func (s *Server) getDiff(c echo.Context) error {
	rowKey, err := url.PathUnescape(c.Param("row_key"))
	if err != nil {
		return badParam("row key %q is not a valid URL path segment; URL-encode it", c.Param("row_key"))
	}
	for name := range c.QueryParams() {
		if name != "table" {
			return badParam("unknown query parameter %q; GET /diff/{row_key} takes only table", name)
		}
	}
	table, err := tableParam(c.QueryParam("table"))
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	logs, err := s.cfg.Store.Queries(s.cfg.Store.Pool).ListSyncLogByRow(ctx, dbgen.ListSyncLogByRowParams{
		RowKey: rowKey, TableName: optText(table),
	})
	if err != nil {
		return err
	}
	if len(logs) == 0 {
		return notFound("no synced change of row key %q%s; check the key (a multi-column key is a JSON array "+
			"such as [\"1\",\"2\"], URL-encoded) and the table", rowKey, tableSuffix(table))
	}
	if tables := targetTables(logs); len(tables) > 1 {
		return badParam("row key %q exists in several tables (%s); add ?table=schema.table",
			rowKey, strings.Join(tables, ", "))
	}

	diff := RowDiff{
		RowKey: rowKey, SourceTable: logs[0].SourceTable, TargetTable: logs[0].TargetTable,
		Changes: make([]RowChange, 0, len(logs)),
	}
	for i := range logs {
		rc, err := rowChange(&logs[i])
		if err != nil {
			return err
		}
		diff.Changes = append(diff.Changes, rc)
	}
	ident := s.targetIdent(&logs[len(logs)-1])
	key, err := s.currentKey(ctx, &logs[len(logs)-1], ident)
	if err != nil {
		return err
	}
	if diff.Current, err = s.readTargetRow(ctx, ident, key); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, diff)
}

// targetIdent quotes the target table of a sync_log row. The stored name joins schema and
// table with a dot, which is ambiguous when one of them contains a dot, so the configured
// target of the row's source table gives the two parts when its name matches. Otherwise
// the name splits at its first dot, with public as the default schema.
func (s *Server) targetIdent(l *dbgen.SyncLog) string {
	if s.cfg.Applier != nil {
		if source, ok := s.cfg.Applier.SourceTable(l.SourceTable); ok {
			if spec := s.cfg.Applier.Spec(source); spec != nil && spec.Target.String() == l.TargetTable {
				return spec.Target.Sanitize()
			}
		}
	}
	schema, name, ok := strings.Cut(l.TargetTable, ".")
	if !ok {
		schema, name = "public", l.TargetTable
	}
	return pgx.Identifier{schema, name}.Sanitize()
}

func tableSuffix(table string) string {
	if table == "" {
		return ""
	}
	return " in table " + table
}

func targetTables(logs []dbgen.SyncLog) []string {
	var tables []string
	for i := range logs {
		if !slices.Contains(tables, logs[i].TargetTable) {
			tables = append(tables, logs[i].TargetTable)
		}
	}
	return tables
}

// columnValues is the format of sync_log.diff.
type columnValues map[string]struct {
	Old json.RawMessage `json:"old"`
	New json.RawMessage `json:"new"`
}

func rowChange(l *dbgen.SyncLog) (RowChange, error) {
	var cols columnValues
	if err := json.Unmarshal(l.Diff, &cols); err != nil {
		return RowChange{}, fmt.Errorf("decode diff of sync_log %s: %w", l.ID, err)
	}
	rc := RowChange{
		ChangeID: l.ChangeEventID, SyncLogID: l.ID, Op: string(l.Op), SyncedAt: l.SyncedAt,
		PerformedBy: l.PerformedBy, UndoStatus: l.UndoStatus, Columns: make([]ColumnDiff, 0, len(cols)),
	}
	if l.UndoRequest.Valid {
		rc.UndoRequest = &l.UndoRequest.UUID
	}
	for _, name := range sortedKeys(cols) {
		rc.Columns = append(rc.Columns, ColumnDiff{
			Column: name, Old: jsonOrNull(cols[name].Old), New: jsonOrNull(cols[name].New),
		})
	}
	return rc, nil
}

func sortedKeys(cols columnValues) []string {
	names := make([]string, 0, len(cols))
	for name := range cols {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// currentKey returns the target key of the row after the write l: the key columns and
// the values of sync_log.target_key, a JSON array in key column order.
func (s *Server) currentKey(ctx context.Context, l *dbgen.SyncLog, ident string) (map[string]*string, error) {
	var values []*string
	if len(l.TargetKey) > 0 {
		if err := json.Unmarshal(l.TargetKey, &values); err != nil {
			return nil, fmt.Errorf("decode target_key of sync_log %s: %w", l.ID, err)
		}
	}
	cols, err := s.keyColumns(ctx, l.SourceTable, ident)
	if err != nil || len(cols) != len(values) {
		return nil, err
	}
	key := make(map[string]*string, len(cols))
	for i, col := range cols {
		key[col] = values[i]
	}
	return key, nil
}

// keyColumns returns the target key columns of a table: the configured key with its
// column renames, or else the target's primary key. NOTE: without a configured key the
// applier uses the source's replica identity. This function assumes that it matches the
// target's primary key, and when it does not, the diff has no current values.
func (s *Server) keyColumns(ctx context.Context, source, ident string) ([]string, error) {
	if s.cfg.Applier != nil {
		if name, ok := s.cfg.Applier.SourceTable(source); ok {
			if spec := s.cfg.Applier.Spec(name); spec != nil && len(spec.Key) > 0 {
				cols := make([]string, len(spec.Key))
				for i, col := range spec.Key {
					cols[i] = col
					if renamed, ok := spec.Columns[col]; ok {
						cols[i] = renamed
					}
				}
				return cols, nil
			}
		}
	}
	rows, err := s.cfg.Store.Pool.Query(ctx, `SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass($1) AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)`, ident)
	if err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", ident, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", ident, err)
	}
	return cols, nil
}

// readTargetRow reads the row of the table ident with the given key, every column as text
// in the store's session formats, so the values compare with those of the diffs. It
// returns nil when no row has that key.
func (s *Server) readTargetRow(ctx context.Context, ident string, key map[string]*string) (map[string]*string, error) {
	if len(key) == 0 {
		return nil, nil
	}

	// The key values are text, so each is cast to the column's type: a comparison of the
	// column itself keeps the target's index usable.
	types, err := s.columnTypes(ctx, ident)
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	for _, col := range slices.Sorted(maps.Keys(key)) {
		typ, ok := types[col]
		if !ok {
			return nil, nil // the key column was dropped, so the row cannot be found by it
		}
		if key[col] == nil {
			where = append(where, pgx.Identifier{col}.Sanitize()+" IS NULL")
			continue
		}
		args = append(args, *key[col])
		where = append(where, fmt.Sprintf("%s = $%d::text::%s", pgx.Identifier{col}.Sanitize(), len(args), typ))
	}

	sql := "SELECT * FROM " + ident + " WHERE " + strings.Join(where, " AND ") + " LIMIT 1"
	rows, err := s.cfg.Store.Pool.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read target row of %s: %w", ident, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	row := map[string]*string{}
	for i, fd := range rows.FieldDescriptions() {
		if raw := rows.RawValues()[i]; raw != nil {
			v := string(raw)
			row[fd.Name] = &v
		} else {
			row[fd.Name] = nil
		}
	}
	rows.Close()
	return row, rows.Err()
}

// columnTypes returns the SQL type of each column of the table ident.
func (s *Server) columnTypes(ctx context.Context, ident string) (map[string]string, error) {
	rows, err := s.cfg.Store.Pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, ident)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", ident, err)
	}
	types, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var col [2]string
		err := r.Scan(&col[0], &col[1])
		return col, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", ident, err)
	}
	m := make(map[string]string, len(types))
	for _, t := range types {
		m[t[0]] = t[1]
	}
	return m, nil
}
