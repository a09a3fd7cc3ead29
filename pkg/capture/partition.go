package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// An UPDATE that moves a row to another partition reaches the stream as a DELETE of the
// old row followed by an INSERT of the new one, and pgoutput does not mark the pair. The
// decoder joins them into one UPDATE when the INSERT comes right after the DELETE in the
// same transaction and on the same partitioned table. The two rows must also have the
// same identity except for partition key columns, and at least one of those must differ.
// A DELETE directly followed by such an INSERT, written as two statements, is joined
// too, because the stream cannot tell it apart.

// partitioning describes a partitioned table for the detection of moved rows.
type partitioning struct {
	// identity contains the columns that identify a row: the primary key, or the replica
	// identity columns of a table without one.
	identity []identityColumn
}

// identityColumn is a column of a row's identity.
type identityColumn struct {
	pos int // position in the relation
	// partKey is set for a partition key column of the table or of one of its
	// partitioned partitions.
	partKey bool
}

// partitionLookup returns the partitioning of a relation, or nil when it is not a
// partitioned table or its partition key contains an expression.
type partitionLookup func(ctx context.Context, rel *change.Relation) (*partitioning, error)

// catalogPartitioning reads the partitioning of a relation from the catalog.
func catalogPartitioning(conn *pgx.Conn) partitionLookup {
	return func(ctx context.Context, rel *change.Relation) (*partitioning, error) {
		var partitioned, expressions bool
		var partKey, primaryKey []string
		err := conn.QueryRow(ctx, `SELECT c.relkind = 'p',
				EXISTS (SELECT FROM pg_partition_tree(c.oid) t
					JOIN pg_partitioned_table p ON p.partrelid = t.relid
					WHERE p.partexprs IS NOT NULL),
				ARRAY(SELECT DISTINCT a.attname::text FROM pg_partition_tree(c.oid) t
					JOIN pg_partitioned_table p ON p.partrelid = t.relid
					JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum = ANY (p.partattrs)),
				ARRAY(SELECT a.attname::text FROM pg_index i
					JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
					WHERE i.indrelid = c.oid AND i.indisprimary)
			FROM pg_class c WHERE c.oid = $1`, rel.OID).
			Scan(&partitioned, &expressions, &partKey, &primaryKey)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil // dropped since; its changes cannot be moves
		}
		if err != nil {
			return nil, fmt.Errorf("look up partitioning of %s (oid %d): %w", rel.Table, rel.OID, err)
		}
		if !partitioned || expressions || len(partKey) == 0 {
			return nil, nil
		}
		return newPartitioning(rel, partKey, primaryKey), nil
	}
}

// newPartitioning describes rel, partitioned by the columns partKey, with the primary
// key columns primaryKey; an empty primaryKey falls back to the replica identity.
func newPartitioning(rel *change.Relation, partKey, primaryKey []string) *partitioning {
	p := &partitioning{}
	for i, c := range rel.Columns {
		if slices.Contains(primaryKey, c.Name) || (len(primaryKey) == 0 && c.Key) {
			p.identity = append(p.identity, identityColumn{pos: i, partKey: slices.Contains(partKey, c.Name)})
		}
	}
	return p
}

// moved reports whether deleted, the row of a DELETE, and inserted, the row of the
// INSERT after it, are one row before and after a move between partitions.
func (p *partitioning) moved(deleted, inserted change.Tuple) bool {
	changedPartKey := false
	for _, c := range p.identity {
		if c.pos >= len(deleted) || c.pos >= len(inserted) {
			return false
		}
		before, after := deleted[c.pos], inserted[c.pos]
		if !before.Known() || !after.Known() {
			return false
		}
		if before.Equal(after) {
			continue
		}
		if !c.partKey {
			return false
		}
		changedPartKey = true
	}
	return changedPartKey
}
