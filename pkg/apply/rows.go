package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// prefetchChunk caps the keys of one locking read.
const prefetchChunk = 1000

// rowID identifies a target row in the batch cache.
func rowID(table change.TableName, key []change.Value) string {
	return table.String() + "\x00" + change.RowKey(key)
}

// row returns the batch's state of the target row with this key, reading and locking it
// on first touch.
func (b *Batch) row(ctx context.Context, p *plan, key []change.Value) (*rowState, error) {
	id := rowID(p.target.Name, key)
	if r, ok := b.rows[id]; ok {
		return r, nil
	}
	if err := b.lockRows(ctx, p, [][]change.Value{key}); err != nil {
		return nil, err
	}
	return b.rows[id], nil
}

// Prefetch reads and locks, with one query per target table and chunk, the target rows
// that events will touch, so that Apply needs no round trip of its own for them.
func (b *Batch) Prefetch(ctx context.Context, events []change.Event) error {
	type group struct {
		p    *plan
		keys [][]change.Value
		seen map[string]bool
	}
	groups := map[*targetTable]*group{}
	add := func(p *plan, t change.Tuple) {
		key, err := p.keyValues(t)
		if err != nil {
			return // Apply reports it
		}
		id := rowID(p.target.Name, key)
		g := groups[p.target]
		if g == nil {
			g = &group{p: p, seen: map[string]bool{}}
			groups[p.target] = g
		}
		if _, cached := b.rows[id]; cached || g.seen[id] {
			return
		}
		g.seen[id] = true
		g.keys = append(g.keys, key)
	}
	for i := range events {
		ev := &events[i]
		if ev.Op == change.OpTruncate {
			continue
		}
		p, err := b.a.plan(ev.Relation)
		if err != nil || p.keyless {
			continue // Apply reports the error; keyless rows are not read ahead
		}
		if ev.Old != nil {
			add(p, ev.Old)
		}
		if ev.New != nil {
			add(p, fillUnchanged(ev.New, ev.Old))
		}
	}

	for _, g := range groups {
		for start := 0; start < len(g.keys); start += prefetchChunk {
			end := min(start+prefetchChunk, len(g.keys))
			if err := b.lockRows(ctx, g.p, g.keys[start:end]); err != nil {
				return err
			}
		}
	}
	return nil
}

// lockRows reads the target rows with the given keys FOR UPDATE and caches them; keys
// without a row are cached as absent.
func (b *Batch) lockRows(ctx context.Context, p *plan, keys [][]change.Value) error {
	sql, args := lockSQL(p, keys)
	rr := b.tx.Conn().PgConn().ExecParams(ctx, sql, args, nil, nil, nil)
	keyPos := make([]int, len(p.keyCol))
	for j, kc := range p.keyCol {
		keyPos[j] = p.target.byName[kc.Name]
	}
	for rr.NextRow() {
		raw := rr.Values()
		vals := make([]change.Value, len(raw))
		for i, v := range raw {
			if v == nil {
				vals[i] = change.NullValue()
			} else {
				vals[i] = change.TextValue(string(v))
			}
		}
		key := make([]change.Value, len(keyPos))
		for j, pos := range keyPos {
			key[j] = vals[pos]
		}
		b.rows[rowID(p.target.Name, key)] = &rowState{exists: true, values: vals}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("lock rows of %s: %w", p.target.Name, err)
	}
	for _, key := range keys {
		id := rowID(p.target.Name, key)
		if _, ok := b.rows[id]; !ok {
			b.rows[id] = &rowState{}
		}
	}
	return nil
}

// lockSQL builds the locking read of all target columns for a list of keys. Keys travel
// as text arrays cast to the key columns' target types, so that indexes are used.
func lockSQL(p *plan, keys [][]change.Value) (string, [][]byte) {
	cols := make([]string, len(p.target.Columns))
	for i, c := range p.target.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	args := make([][]byte, len(p.keyCol))
	arrays := make([]string, len(p.keyCol))
	names := make([]string, len(p.keyCol))
	for j, kc := range p.keyCol {
		texts := make([]string, len(keys))
		for i, k := range keys {
			texts[i] = k[j].Text
		}
		args[j] = []byte(arrayLiteral(texts))
		arrays[j] = fmt.Sprintf("$%d::%s[]", j+1, kc.Type)
		names[j] = pgx.Identifier{kc.Name}.Sanitize()
	}

	var where string
	if len(names) == 1 {
		where = names[0] + " = ANY(" + arrays[0] + ")"
	} else {
		where = "(" + strings.Join(names, ", ") + ") IN (SELECT * FROM unnest(" +
			strings.Join(arrays, ", ") + "))"
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + p.target.Name.Sanitize() +
		" WHERE " + where + " FOR UPDATE", args
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

// forgetTable marks every cached row of a table as absent, after a TRUNCATE.
func (b *Batch) forgetTable(table change.TableName) {
	prefix := table.String() + "\x00"
	for id, r := range b.rows {
		if strings.HasPrefix(id, prefix) {
			r.exists, r.values = false, nil
		}
	}
}

// diff collects {column: {"old": …, "new": …}} in column order.
type diff struct {
	b []byte
}

func newDiff() *diff { return &diff{} }

func (d *diff) add(col string, oldVal, newVal change.Value) {
	if len(d.b) == 0 {
		// Room for this column without escapes and 128 bytes for more, so that the diff of
		// a few short columns is allocated once and a long value is not allocated twice.
		size := len(col) + len(oldVal.Text) + len(newVal.Text) + len(`{"":{"old":"","new":""}}`)
		d.b = make([]byte, 0, size+128)
		d.b = append(d.b, '{')
	} else {
		d.b = append(d.b, ',')
	}
	d.b = change.AppendJSONString(d.b, col)
	d.b = append(d.b, `:{"old":`...)
	d.b = change.AppendValueJSON(d.b, oldVal)
	d.b = append(d.b, `,"new":`...)
	d.b = change.AppendValueJSON(d.b, newVal)
	d.b = append(d.b, '}')
}

// bytes returns the diff as JSON, or nil when no column was added.
func (d *diff) bytes() []byte {
	if len(d.b) == 0 {
		return nil
	}
	return append(d.b, '}')
}

// keyJSON returns the key values as a JSON array, null for NULL.
func keyJSON(key []change.Value) []byte {
	size := 2
	for _, v := range key {
		size += len(v.Text) + 3
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i, v := range key {
		if i > 0 {
			b = append(b, ',')
		}
		b = change.AppendValueJSON(b, v)
	}
	return append(b, ']')
}
