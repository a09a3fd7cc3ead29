package change

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TableName is a schema-qualified table name as PostgreSQL stores it, without quotes.
type TableName struct {
	Schema string
	Name   string
}

// String returns schema.name without quoting, the form used in configuration and logs.
func (t TableName) String() string { return t.Schema + "." + t.Name }

// Sanitize returns the name quoted for use in SQL.
func (t TableName) Sanitize() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// Column describes one column of a relation as the source sent it.
type Column struct {
	Name     string
	TypeOID  uint32
	TypeName string // schema-qualified type name when known, such as "public.mood"
	TypeMod  int32
	Key      bool // part of the replica identity
}

// Relation describes a source table at one point of the stream. A Relation message can
// change the columns mid-stream, so each event points at the relation that was current
// when it was decoded.
type Relation struct {
	OID             uint32
	Table           TableName
	ReplicaIdentity byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []Column
}

// ColumnIndex returns the position of the named column, or -1.
func (r *Relation) ColumnIndex(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// KeyColumns returns the positions of the replica identity columns.
func (r *Relation) KeyColumns() []int {
	var key []int
	for i, c := range r.Columns {
		if c.Key {
			key = append(key, i)
		}
	}
	return key
}

// Validate checks that a tuple has one value per column.
func (r *Relation) Validate(t Tuple) error {
	if t != nil && len(t) != len(r.Columns) {
		return fmt.Errorf("relation %s (oid %d) has %d columns but the tuple has %d values",
			r.Table, r.OID, len(r.Columns), len(t))
	}
	return nil
}

// Tuple holds one value per column of its relation, in the relation's column order.
type Tuple []Value
