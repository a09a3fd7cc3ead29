package undo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
)

// column is one column of a target table, from the target catalog.
type column struct {
	name           string
	typ            string // format_type output, usable in a cast
	generated      bool
	identityAlways bool
}

// targetTable is the current shape of a target table.
type targetTable struct {
	name    string // schema.table, unquoted, as sync_log stores it
	ident   string // quoted for SQL
	missing bool   // the table no longer exists
	columns []column
	byName  map[string]int
	key     []string // key column names, in the order of sync_log.target_key
}

func (t *targetTable) column(name string) (column, bool) {
	i, ok := t.byName[name]
	if !ok {
		return column{}, false
	}
	return t.columns[i], true
}

const catalogSQL = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '',
       a.attidentity = 'a'
  FROM pg_attribute a
 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`

// uniqueKeysSQL lists the column names of the table's unique indexes without predicates
// or expressions, the primary key first.
const uniqueKeysSQL = `SELECT array_agg(a.attname ORDER BY k.ord)
  FROM pg_index i
 CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
 GROUP BY i.indexrelid, i.indisprimary
 ORDER BY i.indisprimary DESC, count(*), i.indexrelid`

// loadTarget reads a target table's columns and works out its key columns: the
// configured key, else stored, the key columns sync_log recorded for a change of the
// table, else the target's primary or first unique key. A table that no longer exists
// comes back with missing set.
func loadTarget(ctx context.Context, tx pgx.Tx, name string, specs []apply.TableSpec, stored []string,
) (*targetTable, error) {
	tn, err := parseTable(name)
	if err != nil {
		return nil, err
	}
	t := &targetTable{name: name, ident: tn.Sanitize(), byName: map[string]int{}}
	rows, err := tx.Query(ctx, catalogSQL, t.ident)
	if err != nil {
		return nil, fmt.Errorf("read columns of target table %s: %w", name, err)
	}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.generated, &c.identityAlways); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of target table %s: %w", name, err)
		}
		t.byName[c.name] = len(t.columns)
		t.columns = append(t.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of target table %s: %w", name, err)
	}
	if len(t.columns) == 0 {
		t.missing = true
		return t, nil
	}

	if key := configuredKey(tn, specs); key != nil {
		t.key = key
		return t, t.checkKey()
	}
	if len(stored) > 0 {
		t.key = stored
		return t, t.checkKey()
	}
	rows, err = tx.Query(ctx, uniqueKeysSQL, t.ident)
	if err != nil {
		return nil, fmt.Errorf("read unique keys of target table %s: %w", name, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return nil, fmt.Errorf("read unique keys of target table %s: %w", name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("target table %s has no primary key or unique index and no "+
			"configured key, so its rows cannot be found: set tables[].key", name)
	}
	// Only changes synced before sync_log.target_key_columns existed get here: their key
	// columns are taken to be the target's primary key, and keyOf rejects a change whose
	// stored key has another length.
	t.key = keys[0]
	return t, t.checkKey()
}

// checkKey checks that the target still has every key column.
func (t *targetTable) checkKey() error {
	for _, name := range t.key {
		if _, ok := t.column(name); !ok {
			return fmt.Errorf("key column %q of target table %s no longer exists, so its rows "+
				"cannot be found", name, t.name)
		}
	}
	return nil
}

// configuredKey returns the target names of the key columns configured for the table
// whose target is tn, or nil when none are configured.
func configuredKey(tn change.TableName, specs []apply.TableSpec) []string {
	for _, s := range specs {
		target := s.Target
		if target == (change.TableName{}) {
			target = s.Source
		}
		if target != tn || len(s.Key) == 0 {
			continue
		}
		key := make([]string, len(s.Key))
		for i, k := range s.Key {
			key[i] = k
			if renamed, ok := s.Columns[k]; ok {
				key[i] = renamed
			}
		}
		return key
	}
	return nil
}

// parseTable splits schema.table at its first dot, as sync_log stores names unquoted.
func parseTable(name string) (change.TableName, error) {
	schema, table, ok := strings.Cut(name, ".")
	if !ok || schema == "" || table == "" {
		return change.TableName{}, fmt.Errorf("target table %q is not of the form schema.table", name)
	}
	return change.TableName{Schema: schema, Name: table}, nil
}

// rowState is the request's copy of a target row: read and locked once, then kept up to
// date with the undo writes planned so far.
type rowState struct {
	exists bool
	values map[string]*string // by column name; nil is NULL
}

// rowID identifies a target row in the request's cache.
func rowID(table string, key []string) string {
	b, _ := json.Marshal(key) // a []string always marshals
	return table + "\x00" + string(b)
}

// lockChunk caps the keys of one locking read.
const lockChunk = 1000

// lockRows reads and locks FOR UPDATE the target rows with the given keys and caches
// them in rows. Keys without a row are cached as absent. Keys are locked in the order
// given, so callers sort them to lock rows in the same order as other requests.
func lockRows(ctx context.Context, tx pgx.Tx, t *targetTable, keys [][]string, rows map[string]*rowState) error {
	for start := 0; start < len(keys); start += lockChunk {
		chunk := keys[start:min(start+lockChunk, len(keys))]
		if err := lockChunkRows(ctx, tx, t, chunk, rows); err != nil {
			return err
		}
	}
	return nil
}

func lockChunkRows(ctx context.Context, tx pgx.Tx, t *targetTable, keys [][]string,
	rows map[string]*rowState,
) error {
	sql, args := lockSQL(t, keys)
	rr := tx.Conn().PgConn().ExecParams(ctx, sql, args, nil, nil, nil)
	for rr.NextRow() {
		raw := rr.Values()
		ord, err := strconv.Atoi(string(raw[0]))
		if err != nil || ord < 1 || ord > len(keys) {
			_, closeErr := rr.Close()
			return errors.Join(fmt.Errorf("lock rows of %s: unexpected key position %q", t.name, raw[0]),
				closeErr)
		}
		values := make(map[string]*string, len(t.columns))
		for i, c := range t.columns {
			if v := raw[i+1]; v != nil {
				s := string(v)
				values[c.name] = &s
			} else {
				values[c.name] = nil
			}
		}
		rows[rowID(t.name, keys[ord-1])] = &rowState{exists: true, values: values}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("lock rows of %s: %w", t.name, err)
	}
	for _, key := range keys {
		if _, ok := rows[rowID(t.name, key)]; !ok {
			rows[rowID(t.name, key)] = &rowState{}
		}
	}
	return nil
}

// lockSQL builds the locking read of all columns of the rows with the given keys. The
// keys travel as text arrays cast to the key columns' types, and the position of each key
// in the list comes back first, so rows are matched to keys whatever their text form.
func lockSQL(t *targetTable, keys [][]string) (string, [][]byte) {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = "t." + pgx.Identifier{c.name}.Sanitize()
	}
	args := make([][]byte, len(t.key))
	arrays := make([]string, len(t.key))
	aliases := make([]string, len(t.key))
	join := make([]string, len(t.key))
	for j, name := range t.key {
		c, _ := t.column(name)
		texts := make([]string, len(keys))
		for i, k := range keys {
			texts[i] = k[j]
		}
		args[j] = []byte(arrayLiteral(texts))
		arrays[j] = fmt.Sprintf("$%d::%s[]", j+1, c.typ)
		aliases[j] = fmt.Sprintf("k%d", j)
		join[j] = fmt.Sprintf("t.%s = k.k%d", pgx.Identifier{name}.Sanitize(), j)
	}
	sql := "SELECT k.ord, " + strings.Join(cols, ", ") +
		" FROM unnest(" + strings.Join(arrays, ", ") + ") WITH ORDINALITY AS k(" +
		strings.Join(aliases, ", ") + ", ord)" +
		" JOIN " + t.ident + " t ON " + strings.Join(join, " AND ") +
		" ORDER BY k.ord FOR UPDATE OF t"
	return sql, args
}

// arrayLiteral quotes texts as a PostgreSQL array literal.
func arrayLiteral(texts []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range texts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range s {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// sortKeys sorts keys and drops duplicates, so that every request locks rows in the same
// order.
func sortKeys(keys [][]string) [][]string {
	slices.SortFunc(keys, slices.Compare)
	return slices.CompactFunc(keys, slices.Equal)
}
