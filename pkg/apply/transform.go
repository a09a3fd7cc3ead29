package apply

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// Transformer computes the values that the transformed columns of a table write to the
// target, such as the CEL transforms of the validate package.
type Transformer interface {
	// Columns returns the transformed source columns.
	Columns() []string
	// Transform returns the target value of each transformed column whose new value ev
	// carries, keyed by source column, in PostgreSQL text form. It leaves out a column
	// that is an unchanged TOAST value or not in the new tuple. actor is the user
	// attached to the source transaction, or "". The error names the column that failed.
	Transform(ctx context.Context, ev *change.Event, actor string) (map[string]change.Value, error)
}

type txActorKey struct{}

// WithTxActor returns a context that carries the user attached to the source
// transaction of the change that Apply, ApplyIsolated or ApplyReleased writes. The
// table's transforms read it as the variable actor. Without it they read the table's
// actor column.
func WithTxActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, txActorKey{}, actor)
}

func txActor(ctx context.Context) string {
	actor, _ := ctx.Value(txActorKey{}).(string)
	return actor
}

// checkTransforms rejects a transform of a key column, because rows are found on the
// target by their source key values, and any transform of a table without a key, whose
// rows are found by all their source values.
func (p *plan) checkTransforms() error {
	if p.spec.Transform == nil {
		return nil
	}
	cols := p.spec.Transform.Columns()
	if p.keyless && len(cols) > 0 {
		return fmt.Errorf("table %s has no key, so its target rows are found by their source "+
			"values, which differ from the transformed values on the target: set tables[].key "+
			"or remove tables[].transform", p.rel.Table)
	}
	for _, i := range p.key {
		if name := p.rel.Columns[i].Name; slices.Contains(cols, name) {
			return fmt.Errorf("table %s: key column %q has a transform, but target rows are "+
				"found by the source key values: remove tables[].transform.%s", p.rel.Table, name, name)
		}
	}
	return nil
}

// transformEvent returns a copy of an INSERT or UPDATE whose new tuple has the
// transformed values, or ev itself when nothing is transformed. ev is left as it is,
// because the audit records the source values.
func transformEvent(ctx context.Context, p *plan, ev *change.Event) (*change.Event, error) {
	if p.spec.Transform == nil || (ev.Op != change.OpInsert && ev.Op != change.OpUpdate) {
		return ev, nil
	}
	values, err := p.spec.Transform.Transform(ctx, ev, txActor(ctx))
	if err != nil {
		return nil, err
	}

	out := *ev
	out.New = slices.Clone(ev.New)
	for col, v := range values {
		if i := p.rel.ColumnIndex(col); i >= 0 && i < len(out.New) {
			out.New[i] = v
		}
	}
	// An UPDATE of a missing target row inserts the row with unchanged TOAST values taken
	// from the old tuple. Those are source values, so a transformed one is marked unknown.
	oldCloned := false
	for _, col := range p.spec.Transform.Columns() {
		i := p.rel.ColumnIndex(col)
		if i < 0 || i >= len(out.New) || out.New[i].Kind != change.Unchanged || i >= len(out.Old) {
			continue
		}
		if !oldCloned {
			out.Old, oldCloned = slices.Clone(ev.Old), true
		}
		out.Old[i] = change.Value{Kind: change.Absent}
	}
	return &out, nil
}

// transformFailure is the result of a change whose transform failed.
func transformFailure(p *plan, ev *change.Event, err error) Result {
	return Result{Status: change.StatusFailed, Reason: err.Error(), Target: p.target.Name, RowKey: p.rowKey(ev)}
}

// rowKey returns the source row key of an INSERT or UPDATE, or "" when the new tuple
// lacks a key value.
func (p *plan) rowKey(ev *change.Event) string {
	key, err := p.keyValues(fillUnchanged(ev.New, ev.Old))
	if err != nil {
		return ""
	}
	return change.RowKey(key)
}

// copyTransformed copies the rows of a table with transforms: it reads them in text form,
// applies the transforms to each as to an INSERT, and writes the mapped columns to the
// staging table with copyFrom. A transform that fails stops the copy with the row's key.
func copyTransformed(ctx context.Context, src, dst pgx.Tx, p *plan, copyFrom string,
	rows *atomic.Int64,
) (int64, error) {
	cols := make([]string, len(p.rel.Columns))
	for i, c := range p.rel.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	query := "SELECT " + strings.Join(cols, ", ") + " FROM " + p.rel.Table.Sanitize()

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeTransformedRows(ctx, src, p, query, pw, rows)
		pw.CloseWithError(err)
		done <- err
	}()
	tag, err := dst.Conn().PgConn().CopyFrom(ctx, pr, copyFrom)
	_ = pr.CloseWithError(err) // unblocks the writer when the target side failed first
	if err := copyError(err, <-done, "read and transform source rows"); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// writeTransformedRows runs query on src and writes each transformed row to w in COPY text
// format.
func writeTransformedRows(ctx context.Context, src pgx.Tx, p *plan, query string, w io.Writer,
	rows *atomic.Int64,
) error {
	rr := src.Conn().PgConn().ExecParams(ctx, query, nil, nil, nil, nil)
	var line []byte
	for rr.NextRow() {
		tuple := make(change.Tuple, len(p.rel.Columns))
		for i, v := range rr.Values() {
			if v == nil {
				tuple[i] = change.NullValue()
			} else {
				tuple[i] = change.TextValue(string(v))
			}
		}
		ev := &change.Event{Op: change.OpInsert, Relation: p.rel, New: tuple}
		transformed, err := transformEvent(ctx, p, ev)
		if err != nil {
			_, _ = rr.Close()
			return fmt.Errorf("row %s: %w", p.rowKey(ev), err)
		}
		line = appendCopyRow(line[:0], p, transformed.New)
		if _, err := w.Write(line); err != nil {
			_, _ = rr.Close()
			return err
		}
		rows.Add(1)
	}
	_, err := rr.Close()
	return err
}

// appendCopyRow appends the mapped columns of tuple as one row of COPY text format: tab
// between columns, \N for NULL, and backslash, newline, carriage return and tab escaped.
func appendCopyRow(buf []byte, p *plan, tuple change.Tuple) []byte {
	for j, c := range p.cols {
		if j > 0 {
			buf = append(buf, '\t')
		}
		v := tuple[c.source]
		if v.Kind != change.Text {
			buf = append(buf, `\N`...)
			continue
		}
		for k := 0; k < len(v.Text); k++ {
			switch ch := v.Text[k]; ch {
			case '\\':
				buf = append(buf, `\\`...)
			case '\n':
				buf = append(buf, `\n`...)
			case '\r':
				buf = append(buf, `\r`...)
			case '\t':
				buf = append(buf, `\t`...)
			default:
				buf = append(buf, ch)
			}
		}
	}
	return append(buf, '\n')
}
