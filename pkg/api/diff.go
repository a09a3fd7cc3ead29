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
	table := c.QueryParam("table")
	for name := range c.QueryParams() {
		if name != "table" {
			return badParam("unknown query parameter %q; GET /diff/{row_key} takes only table", name)
		}
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
	key, err := currentKey(&logs[len(logs)-1])
	if err != nil {
		return err
	}
	if diff.Current, err = s.readTargetRow(ctx, diff.TargetTable, key); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, diff)
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

// currentKey returns the target key of the row after the write l: the key that found the
// row, with the key columns that the write changed set to their new values.
func currentKey(l *dbgen.SyncLog) (map[string]*string, error) {
	var key map[string]*string
	if len(l.TargetKey) > 0 {
		if err := json.Unmarshal(l.TargetKey, &key); err != nil {
			return nil, fmt.Errorf("decode target_key of sync_log %s: %w", l.ID, err)
		}
	}
	var diff map[string]struct {
		New *string `json:"new"`
	}
	if err := json.Unmarshal(l.Diff, &diff); err != nil {
		return nil, fmt.Errorf("decode diff of sync_log %s: %w", l.ID, err)
	}
	for col := range key {
		if d, ok := diff[col]; ok {
			key[col] = d.New
		}
	}
	return key, nil
}

// readTargetRow reads the row of table with the given key, every column as text in the
// store's session formats, so the values compare with those of the diffs. It returns nil
// when no row has that key.
func (s *Server) readTargetRow(ctx context.Context, table string, key map[string]*string) (map[string]*string, error) {
	if len(key) == 0 {
		return nil, nil
	}
	schema, name, ok := strings.Cut(table, ".")
	if !ok {
		schema, name = "public", table
	}
	ident := pgx.Identifier{schema, name}.Sanitize()

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
		return nil, fmt.Errorf("read target row of %s: %w", table, err)
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
