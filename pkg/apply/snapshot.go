package apply

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

const sourceColumnsSQL = `SELECT a.attname, a.atttypid::int8,
       CASE c.relreplident
         WHEN 'f' THEN true
         WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                               AND i.indisprimary AND a.attnum = ANY(i.indkey))
         WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                               AND i.indisreplident AND a.attnum = ANY(i.indkey))
         ELSE false END,
       c.relreplident::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
 ORDER BY a.attnum`

// sourceRelation builds from the source catalog the relation a Relation message would
// describe, for a snapshot copy that has no stream to take it from.
func sourceRelation(ctx context.Context, q Querier, table change.TableName) (*change.Relation, error) {
	rows, err := q.Query(ctx, sourceColumnsSQL, table.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("read columns of source table %s: %w", table, err)
	}
	rel := &change.Relation{Table: table}
	for rows.Next() {
		var c change.Column
		var oid int64
		var identity string
		if err := rows.Scan(&c.Name, &oid, &c.Key, &identity); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of source table %s: %w", table, err)
		}
		c.TypeOID = uint32(oid)
		rel.ReplicaIdentity = identity[0]
		rel.Columns = append(rel.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of source table %s: %w", table, err)
	}
	return rel, nil
}

// CopyTable copies every row of a source table, read inside src (a transaction that
// imported the slot's snapshot), into its target inside dst, and returns the number of
// rows copied. Rows go through a staging table so that rows already on the target are
// updated instead of failing on their key.
func (a *Applier) CopyTable(ctx context.Context, src, dst pgx.Tx, source change.TableName) (int64, error) {
	spec := a.specs[source]
	if spec == nil {
		return 0, fmt.Errorf("copy %s: table is not configured", source)
	}
	rel, err := sourceRelation(ctx, src, source)
	if err != nil {
		return 0, err
	}
	p, err := newPlan(spec, a.targets[source], rel)
	if err != nil {
		return 0, err
	}

	srcCols := make([]string, len(p.cols))
	dstCols := make([]string, len(p.cols))
	overriding := false
	for i, c := range p.cols {
		srcCols[i] = pgx.Identifier{rel.Columns[c.source].Name}.Sanitize()
		dstCols[i] = pgx.Identifier{c.target.Name}.Sanitize()
		overriding = overriding || c.target.IdentityAlways
	}
	stage := pgx.Identifier{"changesync_stage"}.Sanitize()
	dstList := strings.Join(dstCols, ", ")

	create := "CREATE TEMP TABLE " + stage + " ON COMMIT DROP AS SELECT " + dstList +
		" FROM " + p.target.Name.Sanitize() + " WITH NO DATA"
	if _, err := dst.Exec(ctx, create); err != nil {
		return 0, fmt.Errorf("copy %s: create staging table: %w", source, err)
	}
	n, err := pipeCopy(ctx, src, dst,
		"COPY (SELECT "+strings.Join(srcCols, ", ")+" FROM "+source.Sanitize()+") TO STDOUT",
		"COPY "+stage+" ("+dstList+") FROM STDIN")
	if err != nil {
		return 0, fmt.Errorf("copy %s to %s: %w", source, p.target.Name, err)
	}
	if _, err := dst.Exec(ctx, mergeSQL(p, stage, dstCols, overriding)); err != nil {
		return 0, fmt.Errorf("copy %s: move staged rows into %s: %w", source, p.target.Name, err)
	}
	if _, err := dst.Exec(ctx, "DROP TABLE "+stage); err != nil {
		return 0, fmt.Errorf("copy %s: drop staging table: %w", source, err)
	}
	return n, nil
}

// mergeSQL inserts the staged rows, updating rows whose key the target already has when
// a unique index on the key makes that possible.
func mergeSQL(p *plan, stage string, dstCols []string, overriding bool) string {
	list := strings.Join(dstCols, ", ")
	var b strings.Builder
	b.WriteString("INSERT INTO " + p.target.Name.Sanitize() + " (" + list + ")")
	if overriding {
		b.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	b.WriteString(" SELECT " + list + " FROM " + stage)

	keyNames := make([]string, len(p.keyCol))
	for i, kc := range p.keyCol {
		keyNames[i] = kc.Name
	}
	if !p.target.hasUniqueKey(keyNames) {
		return b.String()
	}
	quotedKey := make([]string, len(keyNames))
	for i, k := range keyNames {
		quotedKey[i] = pgx.Identifier{k}.Sanitize()
	}
	var sets []string
	for _, c := range p.cols {
		if c.target.IdentityAlways {
			continue
		}
		col := pgx.Identifier{c.target.Name}.Sanitize()
		sets = append(sets, col+" = EXCLUDED."+col)
	}
	b.WriteString(" ON CONFLICT (" + strings.Join(quotedKey, ", ") + ")")
	if len(sets) == 0 {
		b.WriteString(" DO NOTHING")
	} else {
		b.WriteString(" DO UPDATE SET " + strings.Join(sets, ", "))
	}
	return b.String()
}

// pipeCopy streams COPY TO output of src into COPY FROM input of dst, in text format,
// without holding the table in memory.
func pipeCopy(ctx context.Context, src, dst pgx.Tx, copyTo, copyFrom string) (int64, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := src.Conn().PgConn().CopyTo(ctx, pw, copyTo)
		pw.CloseWithError(err)
		done <- err
	}()
	tag, err := dst.Conn().PgConn().CopyFrom(ctx, pr, copyFrom)
	_ = pr.CloseWithError(err) // unblocks the writer when the target side failed first
	if srcErr := <-done; srcErr != nil {
		return 0, fmt.Errorf("read source: %w", srcErr)
	}
	if err != nil {
		return 0, fmt.Errorf("write target: %w", err)
	}
	return tag.RowsAffected(), nil
}
