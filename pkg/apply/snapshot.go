package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

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
// updated instead of failing on their key. A table with transforms is read row by row
// and each row is transformed as an INSERT; the others stream from COPY to COPY.
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
	var estimate int64
	if err := src.QueryRow(ctx, `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
		FROM pg_class c WHERE c.oid = $1::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree($1::regclass))`,
		source.Sanitize()).Scan(&estimate); err != nil {
		estimate = 0 // progress then reports no estimate
	}
	progress := newCopyProgress(source, estimate, a.log, a.copyProgress)
	stop := progress.report(ctx)
	copyFrom := "COPY " + stage + " (" + dstList + ") FROM STDIN"
	var n int64
	if spec.Transform != nil {
		n, err = copyTransformed(ctx, src, dst, p, copyFrom, &progress.rows)
	} else {
		n, err = pipeCopy(ctx, src, dst,
			"COPY (SELECT "+strings.Join(srcCols, ", ")+" FROM "+source.Sanitize()+") TO STDOUT",
			copyFrom, &progress.rows)
	}
	stop()
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
func pipeCopy(ctx context.Context, src, dst pgx.Tx, copyTo, copyFrom string, rows *atomic.Int64) (int64, error) {
	pipeReader, pw := io.Pipe()
	pr := &rowCounter{r: pipeReader, rows: rows}
	done := make(chan error, 1)
	go func() {
		_, err := src.Conn().PgConn().CopyTo(ctx, pw, copyTo)
		pw.CloseWithError(err)
		done <- err
	}()
	tag, err := dst.Conn().PgConn().CopyFrom(ctx, pr, copyFrom)
	_ = pipeReader.CloseWithError(err) // unblocks the writer when the target side failed first
	if err := copyError(err, <-done, "read source"); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// copyError returns the error of a piped copy from the error of the target's COPY FROM
// and that of the side that writes into the pipe. When the target rejects a row, the
// writer fails with that same error, so the target is named. When the writer fails
// first, the target fails too, and the writer's error, after writer, is the cause.
func copyError(targetErr, writerErr error, writer string) error {
	if targetErr != nil && (writerErr == nil || errors.Is(writerErr, targetErr)) {
		return fmt.Errorf("the target rejected a row: %w; the copy is all or nothing, so "+
			"make the target column accept the source's values (changesync check lists "+
			"differing types) and start again", clipError(targetErr))
	}
	if writerErr != nil {
		return fmt.Errorf("%s: %w", writer, clipError(writerErr))
	}
	return nil
}

// maxErrorText bounds the text of an error that may quote a whole value, such as the
// target's "invalid input syntax" for a value of many megabytes.
const maxErrorText = 1000

// clippedError is an error whose text is cut to maxErrorText bytes. It unwraps to the
// full error, so errors.As still finds the server's error.
type clippedError struct{ err error }

func (e clippedError) Error() string {
	text := e.err.Error()
	return fmt.Sprintf("%s… (%d more bytes of the message left out)", text[:maxErrorText], len(text)-maxErrorText)
}

func (e clippedError) Unwrap() error { return e.err }

// clipError returns err, or err with its text cut to maxErrorText bytes when longer.
func clipError(err error) error {
	if len(err.Error()) <= maxErrorText {
		return err
	}
	return clippedError{err: err}
}

// rowCounter counts the rows of a COPY text stream as it is read: each row ends with a
// newline, and newlines inside values are escaped.
type rowCounter struct {
	r    io.Reader
	rows *atomic.Int64
}

func (c *rowCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.rows.Add(int64(bytes.Count(p[:n], []byte{'\n'})))
	return n, err
}

// copyProgressInterval is how often a running copy logs its progress.
const copyProgressInterval = 10 * time.Second

// CopyProgress receives the progress of a table copy: the rows copied so far and the
// planner's estimate of the table's rows (0 when unknown).
type CopyProgress func(table change.TableName, copied, estimate int64)

// OnCopyProgress sets the function that receives the progress of every table copy, such
// as metrics. It is called every few seconds while a copy runs, and once at its end.
func (a *Applier) OnCopyProgress(fn CopyProgress) { a.copyProgress = fn }

type copyProgress struct {
	table    change.TableName
	estimate int64
	rows     atomic.Int64
	log      *slog.Logger
	fn       CopyProgress
	start    time.Time
}

func newCopyProgress(table change.TableName, estimate int64, log *slog.Logger, fn CopyProgress) *copyProgress {
	return &copyProgress{table: table, estimate: estimate, log: log, fn: fn, start: time.Now()}
}

// report logs and reports progress every copyProgressInterval until the returned
// function is called, which reports the final count.
func (p *copyProgress) report(ctx context.Context) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(copyProgressInterval):
				p.tick()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if p.fn != nil {
			p.fn(p.table, p.rows.Load(), p.estimate)
		}
	}
}

func (p *copyProgress) tick() {
	copied := p.rows.Load()
	elapsed := time.Since(p.start)
	rate := float64(copied) / elapsed.Seconds()
	attrs := []any{"table", p.table.String(), "rows", copied, "rows_per_second", int64(rate)}
	if p.estimate > 0 {
		attrs = append(attrs, "estimate", p.estimate)
		if rate > 0 && copied < p.estimate {
			left := time.Duration(float64(p.estimate-copied) / rate * float64(time.Second))
			attrs = append(attrs, "time_left", left.Round(time.Second).String())
		}
	}
	p.log.Info("snapshot copy progress", attrs...)
	if p.fn != nil {
		p.fn(p.table, copied, p.estimate)
	}
}
