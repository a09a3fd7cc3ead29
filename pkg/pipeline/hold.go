package pipeline

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// heldRows are the source rows that have a held or blocked change. A later change to
// such a row waits behind it, so that changes of one row apply in commit order.
type heldRows map[string]bool

func heldKey(table, rowKey string) string { return table + "\x00" + rowKey }

// blocks reports whether a change of table touching keys must wait.
func (h heldRows) blocks(table string, keys []string) bool {
	if h[heldKey(table, "*")] {
		return true
	}
	for _, k := range keys {
		if h[heldKey(table, k)] {
			return true
		}
	}
	return false
}

func (h heldRows) add(table string, keys []string) {
	for _, k := range keys {
		h[heldKey(table, k)] = true
	}
}

// lockPipeline takes the pipeline's lock for the rest of the target transaction. The
// lock serializes batches with the release of held changes, so that no change is
// blocked behind a change that a release is applying at the same moment.
func lockPipeline(ctx context.Context, tx pgx.Tx, pipeline string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "changesync/"+pipeline); err != nil {
		return fmt.Errorf("lock pipeline %s: %w", pipeline, err)
	}
	return nil
}

// lockPending takes the pipeline's lock and returns its pending changes, locked.
func lockPending(ctx context.Context, tx pgx.Tx, pipeline string) ([]dbgen.ChangeEvent, error) {
	if err := lockPipeline(ctx, tx, pipeline); err != nil {
		return nil, err
	}
	pending, err := dbgen.New(tx).ListPendingChanges(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("read held changes: %w", err)
	}
	return pending, nil
}

// loadHeld takes the pipeline's lock and returns the rows with a pending change. It
// reads only their keys, because a held bulk transaction can leave many of them.
func loadHeld(ctx context.Context, tx pgx.Tx, pipeline string) (heldRows, error) {
	if err := lockPipeline(ctx, tx, pipeline); err != nil {
		return nil, err
	}
	rows, err := dbgen.New(tx).ListPendingRows(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("read held rows: %w", err)
	}
	held := heldRows{}
	for _, r := range rows {
		key := r.RowKey
		if r.Truncate {
			key = "*"
		}
		held[heldKey(r.TableName, key)] = true
	}
	return held, nil
}

// decideRow applies the per-row order to a decision: an approved change of a row with a
// pending change is blocked, and a held or blocked change makes its rows pending.
func (p *Pipeline) decideRow(held heldRows, ev *change.Event, dec change.Decision) (apply.Result, bool) {
	table := ev.Relation.Table.String()
	keys := p.applier.RowKeys(ev)
	switch {
	case dec.Verdict == change.Hold:
		held.add(table, keys)
		return apply.Result{Status: change.StatusHeld}, false
	case dec.Verdict == change.Approve && held.blocks(table, keys):
		held.add(table, keys)
		return apply.Result{
			Status: change.StatusBlocked,
			Reason: "waits behind a held change of the same row",
		}, false
	case dec.Verdict == change.Approve:
		return apply.Result{}, true
	}
	return apply.Result{Status: statusOf(dec.Verdict)}, false
}
