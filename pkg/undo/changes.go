package undo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// pending is a synced change that the request undoes.
type pending struct {
	ev     dbgen.LockChangesForUndoRow
	op     change.Op
	target *targetTable
	key    []string // the target key the change left the row under
	// columns lists the columns of the diff in target column order, then the columns
	// the target no longer has, in name order.
	columns []string
	diff    map[string]ColumnChange // from sync_log.diff
}

// endOfTime stands for a window without an end.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// scopeIDs returns the ids of the changes a request selects. It returns ErrNotFound when
// the scope selects nothing.
func scopeIDs(ctx context.Context, q *dbgen.Queries, req *Request, s scope) ([]uuid.UUID, error) {
	switch s {
	case scopeChange:
		return []uuid.UUID{req.ChangeID}, nil
	case scopeToken:
		id, err := q.GetChangeIDByUndoToken(ctx, req.UndoToken)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("undo token %s: %w", req.UndoToken, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("find the change of undo token %s: %w", req.UndoToken, err)
		}
		return []uuid.UUID{id}, nil
	case scopeThread:
		ids, err := q.ListChangeIDsByThread(ctx, req.ThreadID)
		if err != nil {
			return nil, fmt.Errorf("list the changes of thread %s: %w", req.ThreadID, err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("thread %s: %w", req.ThreadID, ErrNotFound)
		}
		return ids, nil
	case scopeRow:
		ids, err := q.ListSyncedChangeIDsByRow(ctx, dbgen.ListSyncedChangeIDsByRowParams{
			TableName: req.Table, RowKey: req.RowKey, Since: req.Since,
		})
		if err != nil {
			return nil, fmt.Errorf("list the changes of row %s of %s: %w", req.RowKey, req.Table, err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("synced changes of row %s of table %s%s: %w", req.RowKey,
				req.Table, sinceText(req.Since), ErrNotFound)
		}
		return ids, nil
	default:
		return windowIDs(ctx, q, req)
	}
}

func windowIDs(ctx context.Context, q *dbgen.Queries, req *Request) ([]uuid.UUID, error) {
	until := req.Until
	if until.IsZero() {
		until = endOfTime
	}
	tables := req.Tables
	if tables == nil {
		tables = []string{}
	}
	ids, err := q.ListSyncedChangeIDsInWindow(ctx, dbgen.ListSyncedChangeIDsInWindowParams{
		Since: req.Since, Until: until, Tables: tables,
	})
	if err != nil {
		return nil, fmt.Errorf("list the changes synced since %s: %w", req.Since.Format(time.RFC3339), err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("changes synced from %s to %s%s: %w", req.Since.Format(time.RFC3339),
			until.Format(time.RFC3339), tablesText(tables), ErrNotFound)
	}
	return ids, nil
}

func sinceText(since time.Time) string {
	if since.IsZero() {
		return ""
	}
	return " since " + since.Format(time.RFC3339)
}

func tablesText(tables []string) string {
	if len(tables) == 0 {
		return ""
	}
	return fmt.Sprintf(" in tables %v", tables)
}

// skipReason returns why a locked change cannot be undone, with the sentinel error that
// goes with it, or "" and nil when it can.
func skipReason(ev *dbgen.LockChangesForUndoRow) (string, error) {
	switch {
	case ev.Status == dbgen.ChangeStatusUndone:
		return "the change was undone by an earlier request", ErrAlreadyUndone
	case ev.Status != dbgen.ChangeStatusSynced:
		detail := ev.DecisionReason.String
		if ev.Error.Valid {
			detail = ev.Error.String
		}
		reason := fmt.Sprintf("the change is %s, so changesync did not write it to the target", ev.Status)
		if detail != "" {
			reason += " (" + detail + ")"
		}
		return reason, ErrNotUndoable
	case ev.ChangeType == dbgen.ChangeTypeTruncate:
		return "a TRUNCATE cannot be undone, because the rows it removed are not recorded", ErrNotUndoable
	case !ev.SyncLogID.Valid:
		return "changesync wrote nothing to the target for this change (no sync_log row)", ErrNotUndoable
	}
	return "", nil
}

// selectChanges splits the locked changes into those to undo and those skipped. For a
// scope of one change, a change that cannot be undone is an error. A wider scope skips
// it, and only a scope with nothing left to undo is an error.
func selectChanges(req *Request, s scope, ids []uuid.UUID, locked []dbgen.LockChangesForUndoRow,
) ([]dbgen.LockChangesForUndoRow, []Skipped, error) {
	if s.single() && len(locked) == 0 {
		return nil, nil, fmt.Errorf("change %s: %w", ids[0], ErrNotFound)
	}
	var undo []dbgen.LockChangesForUndoRow
	var skipped []Skipped
	var firstErr error
	for _, ev := range locked {
		reason, err := skipReason(&ev)
		if err == nil {
			undo = append(undo, ev)
			continue
		}
		if s.single() {
			return nil, nil, fmt.Errorf("change %s: %s: %w", ev.ID, reason, err)
		}
		// With nothing left to undo, the error names an undone change if there is one,
		// because then the scope was undone before.
		if firstErr == nil || (errors.Is(err, ErrAlreadyUndone) && !errors.Is(firstErr, ErrAlreadyUndone)) {
			firstErr = fmt.Errorf("none of the %d selected changes is left to undo: change %s: %s: %w",
				len(locked), ev.ID, reason, err)
		}
		skipped = append(skipped, Skipped{
			ChangeID: ev.ID, Table: ev.TableName, RowKey: ev.RowKey, Op: change.Op(ev.ChangeType),
			Status: string(ev.Status), Reason: reason,
		})
	}
	if len(undo) == 0 {
		return nil, skipped, firstErr
	}
	return undo, skipped, nil
}

// newPending decodes the stored key and diff of a change against its target table.
func newPending(ev dbgen.LockChangesForUndoRow, t *targetTable) (*pending, error) {
	// The write that the applier did decides the undo: an INSERT applied as an update of
	// an existing row is undone as an update, and an UPDATE applied as an insert of a
	// missing row as a delete.
	op := change.Op(ev.ChangeType)
	if ev.AppliedOp.Valid {
		op = change.Op(ev.AppliedOp.ChangeType)
	}
	p := &pending{ev: ev, op: op, target: t}
	if err := json.Unmarshal(ev.Diff, &p.diff); err != nil {
		return nil, fmt.Errorf("change %s: decode sync_log diff: %w", ev.ID, err)
	}
	if t.missing {
		return p, nil
	}
	key, err := keyOf(ev, t)
	if err != nil {
		return nil, err
	}
	p.key = key
	for _, c := range t.columns {
		if _, ok := p.diff[c.name]; ok {
			p.columns = append(p.columns, c.name)
		}
	}
	var dropped []string
	for name := range p.diff {
		if _, ok := t.column(name); !ok {
			dropped = append(dropped, name)
		}
	}
	slices.Sort(dropped)
	p.columns = append(p.columns, dropped...)
	return p, nil
}

// keyOf decodes sync_log.target_key, a JSON array of the key values in key order.
func keyOf(ev dbgen.LockChangesForUndoRow, t *targetTable) ([]string, error) {
	var values []*string
	if err := json.Unmarshal(ev.TargetKey, &values); err != nil {
		return nil, fmt.Errorf("change %s: decode sync_log target_key %s: %w", ev.ID, ev.TargetKey, err)
	}
	if len(ev.TargetKeyColumns) > 0 && !slices.Equal(ev.TargetKeyColumns, t.key) {
		return nil, fmt.Errorf("change %s was synced with the key columns %v of %s, but this "+
			"undo finds its rows by %v: undo the change on its own, or set tables[].key to %v",
			ev.ID, ev.TargetKeyColumns, t.name, t.key, ev.TargetKeyColumns)
	}
	if len(values) != len(t.key) {
		return nil, fmt.Errorf("change %s: the stored target key %s has %d values but the key of %s "+
			"has %d columns %v: set tables[].key to the key the change was synced with",
			ev.ID, ev.TargetKey, len(values), t.name, len(t.key), t.key)
	}
	key := make([]string, len(values))
	for i, v := range values {
		if v == nil {
			return nil, fmt.Errorf("change %s: the stored target key %s has a NULL value", ev.ID, ev.TargetKey)
		}
		key[i] = *v
	}
	return key, nil
}

// oldKey returns the key the row had before the change: the stored key with the old
// values of the key columns the change updated.
func (p *pending) oldKey() []string {
	key := make([]string, len(p.key))
	copy(key, p.key)
	if p.op != change.OpUpdate {
		return key
	}
	for j, name := range p.target.key {
		if d, ok := p.diff[name]; ok && d.Old != nil {
			key[j] = *d.Old
		}
	}
	return key
}
