package capture

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// typeLookup returns the schema-qualified name of a type from the catalog.
type typeLookup func(ctx context.Context, oid uint32) (string, error)

// typeNames names column types. pgoutput sends a Type message for each type outside
// pg_catalog before the first Relation message that uses it. Built-in types are named by
// pgx's type map, and the catalog is asked for the rest.
type typeNames struct {
	builtin *pgtype.Map
	names   map[uint32]string // from Type messages and catalog lookups
	lookup  typeLookup        // nil leaves unknown types unnamed
}

func newTypeNames(lookup typeLookup) *typeNames {
	return &typeNames{builtin: pgtype.NewMap(), names: map[uint32]string{}, lookup: lookup}
}

// add records the name a Type message gives.
func (t *typeNames) add(oid uint32, namespace, name string) {
	t.names[oid] = namespace + "." + name
}

// name returns the name of a type, or "" when neither a Type message, pgx's type map nor
// the catalog has it.
func (t *typeNames) name(ctx context.Context, oid uint32) (string, error) {
	if n, ok := t.names[oid]; ok {
		return n, nil
	}
	if typ, ok := t.builtin.TypeForOID(oid); ok {
		return typ.Name, nil
	}
	if t.lookup == nil {
		return "", nil
	}

	n, err := t.lookup(ctx, oid)
	if err != nil {
		return "", err
	}
	t.names[oid] = n
	return n, nil
}

// catalogTypeName reads the schema-qualified name of a type from pg_type. A type that no
// longer exists gets the name "".
func catalogTypeName(conn *pgx.Conn) typeLookup {
	return func(ctx context.Context, oid uint32) (string, error) {
		var name string
		err := conn.QueryRow(ctx, `SELECT n.nspname || '.' || t.typname
			FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE t.oid = $1`, oid).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("look up name of type oid %d: %w", oid, err)
		}
		return name, nil
	}
}
