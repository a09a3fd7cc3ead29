package validate

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/change"
)

// The variables that a rule's condition can read.
const (
	varOld     = "old"
	varNew     = "new"
	varChanged = "changed"
	varOp      = "op"
	varTable   = "table"
	varActor   = "actor"
)

// eventVars builds the CEL activation of one event.
//
// old and new map column names to values, and NULL is null. Values of the types that CEL
// supports become CEL values: int2, int4 and int8 are int, float4, float8 and numeric are
// double, bool is bool, bytea is bytes, and timestamp, timestamptz and date are timestamp.
// A numeric loses the digits beyond float64 precision. Every other value, including infinite
// timestamps, is its PostgreSQL text form as a string. An unchanged TOAST value and a
// column missing from a key-only old tuple are not in the map at all, because their
// content was not sent, so has(new.col) tells a known value from an unknown one. A tuple
// that was not sent (old of an INSERT, new of a DELETE) is an empty map.
func eventVars(types *pgtype.Map, tx *change.Tx, ev *change.Event, actorColumn string) map[string]any {
	table := ""
	var oldRow, newRow map[string]any
	if ev.Relation != nil {
		table = ev.Relation.Table.String()
		oldRow = tupleVars(types, ev.Relation, ev.Old)
		newRow = tupleVars(types, ev.Relation, ev.New)
	}
	return map[string]any{
		varOld:     oldRow,
		varNew:     newRow,
		varChanged: changedColumns(ev),
		varOp:      string(ev.Op),
		varTable:   table,
		varActor:   actorOf(tx, ev, actorColumn),
	}
}

// tupleVars returns the known values of a tuple, keyed by column name, as CEL values.
func tupleVars(types *pgtype.Map, rel *change.Relation, t change.Tuple) map[string]any {
	row := make(map[string]any, len(t))
	for i, v := range t {
		if !v.Known() || i >= len(rel.Columns) {
			continue
		}
		row[rel.Columns[i].Name] = celValue(types, rel, i, v)
	}
	return row
}

// celValue converts one known value to the Go type that CEL adapts to the matching CEL
// type, and falls back to the text form for every other type.
func celValue(types *pgtype.Map, rel *change.Relation, col int, v change.Value) any {
	if v.Kind == change.Null {
		return nil
	}
	typed, err := rel.Typed(types, col, v)
	if err != nil {
		return v.Text
	}

	switch x := typed.(type) {
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case float32:
		return float64(x)
	case float64:
		return x
	case bool:
		return x
	case string:
		return x
	case []byte:
		return x
	case time.Time:
		return x
	case pgtype.Numeric:
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return v.Text
		}
		return f.Float64
	default:
		return v.Text
	}
}

// changedColumns lists, in column order, the columns an event changes. An INSERT and a
// DELETE change every column. An UPDATE changes each column whose new value is known and
// differs from the old one. When the old value is unknown, because the source sent no
// old tuple or only its key, a column with a known new value counts as changed. An
// unchanged TOAST value never counts. A TRUNCATE changes no column.
func changedColumns(ev *change.Event) []string {
	rel := ev.Relation
	if rel == nil {
		return []string{}
	}

	changed := make([]string, 0, len(rel.Columns))
	switch ev.Op {
	case change.OpInsert, change.OpDelete:
		for _, c := range rel.Columns {
			changed = append(changed, c.Name)
		}
	case change.OpUpdate:
		for i, c := range rel.Columns {
			if columnChanged(ev, i) {
				changed = append(changed, c.Name)
			}
		}
	}
	return changed
}

// columnChanged reports whether an UPDATE changes column i.
func columnChanged(ev *change.Event, i int) bool {
	if i >= len(ev.New) || !ev.New[i].Known() {
		return false
	}
	if i >= len(ev.Old) || !ev.Old[i].Known() {
		return true
	}
	return !ev.Old[i].Equal(ev.New[i])
}

// actorOf returns the actor of an event as the audit trail records it: the user the
// application attached to the transaction, else the new value of the table's actor
// column, else "".
func actorOf(tx *change.Tx, ev *change.Event, actorColumn string) string {
	if tx != nil && tx.Actor != "" {
		return tx.Actor
	}
	if actorColumn == "" || ev.Relation == nil {
		return ""
	}
	i := ev.Relation.ColumnIndex(actorColumn)
	if i < 0 || i >= len(ev.New) || ev.New[i].Kind != change.Text {
		return ""
	}
	return ev.New[i].Text
}
