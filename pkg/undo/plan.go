package undo

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// write is one target statement of an undo and the row count it must affect.
type write struct {
	sql      string
	args     [][]byte
	what     string
	wantRows int64
}

// planned is the undo of one change: what it writes and the conflicts it found.
type planned struct {
	p         *pending
	change    Change
	conflicts []Conflict
	// writeOp is the operation the undo performs on the target row, recorded in sync_log.
	writeOp change.Op
	// keyAfter is the target key of the row after the undo.
	keyAfter []string
}

// planner works out the undo of each change, newest first, against the locked target rows.
// It keeps the rows up to date with the writes it plans, so an older change of the same
// row is checked against the values the newer undos restore.
type planner struct {
	rows   map[string]*rowState
	writes []write
}

func (pl *planner) plan(p *pending) planned {
	u := planned{p: p, change: Change{
		ChangeID: p.ev.ID, ThreadID: p.ev.ThreadID, Table: p.ev.TableName,
		TargetTable: p.target.name, RowKey: p.ev.RowKey, Op: p.op, Action: ActionNothing,
	}, keyAfter: p.key}
	if p.target.missing {
		u.conflicts = append(u.conflicts, conflict(p, "", nil, nil, ReasonTableMissing, true))
		return u
	}
	switch p.op {
	case change.OpInsert:
		pl.deleteRow(&u)
	case change.OpDelete:
		pl.insertRow(&u)
	default:
		pl.restoreRow(&u)
	}
	return u
}

func conflict(p *pending, col string, expected, found *string, reason string, blocking bool) Conflict {
	return Conflict{
		ChangeID: p.ev.ID, Table: p.target.name, RowKey: p.ev.RowKey, Column: col,
		Expected: expected, Found: found, Reason: reason, Blocking: blocking,
	}
}

// checkColumns returns a conflict for each column of the change's diff that the target
// no longer has or that no longer holds the value changesync wrote.
func checkColumns(p *pending, row *rowState) []Conflict {
	var conflicts []Conflict
	for _, col := range p.columns {
		d := p.diff[col]
		if _, ok := p.target.column(col); !ok {
			conflicts = append(conflicts, conflict(p, col, d.New, nil, ReasonColumnMissing, false))
			continue
		}
		if found := row.values[col]; !equal(found, d.New) {
			conflicts = append(conflicts, conflict(p, col, d.New, found, ReasonChanged, false))
		}
	}
	return conflicts
}

func equal(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// deleteRow plans the undo of an INSERT: the row is deleted.
func (pl *planner) deleteRow(u *planned) {
	p := u.p
	row := pl.rows[rowID(p.target.name, p.key)]
	if !row.exists {
		u.conflicts = append(u.conflicts, conflict(p, "", nil, nil, ReasonRowMissing, false))
		return
	}
	u.conflicts = checkColumns(p, row)

	diff := map[string]ColumnChange{}
	for _, c := range p.target.columns {
		if !c.generated {
			diff[c.name] = ColumnChange{Old: row.values[c.name]}
		}
	}
	pl.writes = append(pl.writes, write{
		sql:  "DELETE FROM " + p.target.ident + " WHERE " + whereKey(p.target, 1),
		args: texts(p.key), what: "delete from " + p.target.name, wantRows: 1,
	})
	row.exists, row.values = false, nil
	u.change.Action, u.change.Diff, u.writeOp = ActionDelete, diff, change.OpDelete
}

// insertRow plans the undo of a DELETE: the old row is inserted again. When a row with
// the key exists again, that is a conflict, and a forced undo updates it to the old values.
func (pl *planner) insertRow(u *planned) {
	p := u.p
	row := pl.rows[rowID(p.target.name, p.key)]
	if row.exists {
		u.conflicts = append(u.conflicts, conflict(p, "", nil, nil, ReasonRowExists, false))
		pl.updateRow(u, row, p.key)
		u.writeOp = change.OpUpdate
		return
	}

	var cols, params []string
	var args [][]byte
	overriding := false
	diff := map[string]ColumnChange{}
	values := map[string]*string{}
	for _, name := range p.columns {
		c, ok := p.target.column(name)
		if !ok {
			u.conflicts = append(u.conflicts, conflict(p, name, nil, nil, ReasonColumnMissing, false))
			continue
		}
		if c.generated {
			continue
		}
		old := p.diff[name].Old
		cols = append(cols, pgx.Identifier{name}.Sanitize())
		args = append(args, param(old))
		params = append(params, fmt.Sprintf("$%d", len(args)))
		overriding = overriding || c.identityAlways
		diff[name] = ColumnChange{New: old}
		values[name] = old
	}
	sql := "INSERT INTO " + p.target.ident + " (" + strings.Join(cols, ", ") + ")"
	if overriding {
		sql += " OVERRIDING SYSTEM VALUE"
	}
	sql += " VALUES (" + strings.Join(params, ", ") + ")"
	pl.writes = append(pl.writes, write{sql: sql, args: args, what: "insert into " + p.target.name, wantRows: 1})
	row.exists, row.values = true, values
	u.change.Action, u.change.Diff, u.writeOp = ActionInsert, diff, change.OpInsert
}

// restoreRow plans the undo of an UPDATE: the changed columns get their old values, and
// a row whose key the update changed moves back to its old key.
func (pl *planner) restoreRow(u *planned) {
	p := u.p
	row := pl.rows[rowID(p.target.name, p.key)]
	if !row.exists {
		u.conflicts = append(u.conflicts, conflict(p, "", nil, nil, ReasonRowMissing, false))
		return
	}
	u.conflicts = checkColumns(p, row)

	oldKey := p.oldKey()
	moved := !slices.Equal(oldKey, p.key)
	if moved && pl.rows[rowID(p.target.name, oldKey)].exists {
		u.conflicts = append(u.conflicts, conflict(p, "", nil, nil, ReasonKeyTaken, true))
		return
	}
	pl.updateRow(u, row, p.key)
	u.writeOp = change.OpUpdate
	if moved {
		pl.rows[rowID(p.target.name, oldKey)] = &rowState{exists: true, values: row.values}
		pl.rows[rowID(p.target.name, p.key)] = &rowState{}
		u.change.Action, u.keyAfter = ActionMove, oldKey
	}
}

// updateRow plans an UPDATE of the row at key that sets each column of the change's diff
// that the target still has to its old value.
func (pl *planner) updateRow(u *planned, row *rowState, key []string) {
	p := u.p
	var sets []string
	var args [][]byte
	diff := map[string]ColumnChange{}
	for _, name := range p.columns {
		c, ok := p.target.column(name)
		if !ok || c.generated || c.identityAlways {
			continue
		}
		old := p.diff[name].Old
		args = append(args, param(old))
		sets = append(sets, fmt.Sprintf("%s = $%d", pgx.Identifier{name}.Sanitize(), len(args)))
		diff[name] = ColumnChange{Old: row.values[name], New: old}
		row.values[name] = old
	}
	if len(sets) == 0 {
		return
	}
	sql := "UPDATE " + p.target.ident + " SET " + strings.Join(sets, ", ") +
		" WHERE " + whereKey(p.target, len(args)+1)
	pl.writes = append(pl.writes, write{
		sql: sql, args: append(args, texts(key)...), what: "update " + p.target.name, wantRows: 1,
	})
	u.change.Action, u.change.Diff = ActionUpdate, diff
}

// whereKey returns "k1" = $n AND "k2" = $n+1 for the key columns, numbering from first.
func whereKey(t *targetTable, first int) string {
	parts := make([]string, len(t.key))
	for j, name := range t.key {
		parts[j] = fmt.Sprintf("%s = $%d", pgx.Identifier{name}.Sanitize(), first+j)
	}
	return strings.Join(parts, " AND ")
}

func param(v *string) []byte {
	if v == nil {
		return nil
	}
	return []byte(*v)
}

func texts(key []string) [][]byte {
	out := make([][]byte, len(key))
	for i, k := range key {
		out[i] = []byte(k)
	}
	return out
}

// keysToLock returns, per target table, the keys of every row the changes touch: the
// key each change left the row under, and the old key of a row an update moved.
func keysToLock(changes []*pending) map[*targetTable][][]string {
	keys := map[*targetTable][][]string{}
	for _, p := range changes {
		if p.target.missing {
			continue
		}
		keys[p.target] = append(keys[p.target], p.key)
		if p.op == change.OpUpdate {
			if old := p.oldKey(); !slices.Equal(old, p.key) {
				keys[p.target] = append(keys[p.target], old)
			}
		}
	}
	for t, k := range keys {
		keys[t] = sortKeys(k)
	}
	return keys
}
