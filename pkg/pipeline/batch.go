package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// audit collects the metadata rows of a batch.
type audit struct {
	events []dbgen.InsertChangeEventsParams
	logs   []dbgen.InsertSyncLogParams
	// unsynced indexes the events that were approved but not synced, such as failed or
	// held applies, which are logged once the batch commits.
	unsynced []int
}

// commitBatch applies a batch of source transactions and commits the target writes, the
// audit rows and the checkpoint in one target transaction. Then it confirms the batch's
// end LSN to the slot. Transactions at or below the checkpoint were applied before and
// are skipped.
//
// With isolate, each change is applied and sent on its own, and a change the target
// rejects for its data is recorded as failed instead of failing the batch.
func (p *Pipeline) commitBatch(ctx context.Context, batch []*change.Tx, isolate bool) error {
	last := batch[len(batch)-1]
	fresh := make([]*change.Tx, 0, len(batch))
	for _, tx := range batch {
		if tx.CommitLSN > p.checkpoint {
			fresh = append(fresh, tx)
		}
	}
	if len(fresh) == 0 {
		p.src.Confirm(last.EndLSN)
		return nil
	}

	dbtx, err := p.store.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin target transaction: %w", err)
	}
	defer dbtx.Rollback(ctx)

	b := p.applier.Begin(dbtx)
	if !isolate {
		if err := b.Prefetch(ctx, configuredEvents(p.applier, fresh)); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	var rows audit
	for _, tx := range fresh {
		if err := p.applyTx(ctx, b, tx, now, &rows, isolate); err != nil {
			return err
		}
	}
	if err := b.Flush(ctx); err != nil {
		return err
	}

	q := dbgen.New(dbtx)
	if len(rows.events) > 0 {
		if _, err := q.InsertChangeEvents(ctx, rows.events); err != nil {
			return fmt.Errorf("write change_events: %w", err)
		}
	}
	if len(rows.logs) > 0 {
		if _, err := q.InsertSyncLog(ctx, rows.logs); err != nil {
			return fmt.Errorf("write sync_log: %w", err)
		}
	}
	if err := store.SaveCheckpoint(ctx, dbtx, p.cfg.Name, p.cfg.Slot, last.CommitLSN, last.EndLSN); err != nil {
		return err
	}
	if err := dbtx.Commit(ctx); err != nil {
		return fmt.Errorf("commit target transaction: %w", err)
	}

	p.checkpoint = last.CommitLSN
	p.src.Confirm(last.EndLSN)
	p.logUnsynced(ctx, &rows)
	if p.log.Enabled(ctx, -4) {
		p.log.Debug("batch committed", "pipeline", p.cfg.Name, "transactions", len(fresh),
			"events", len(rows.events), "lsn", last.CommitLSN.String())
	}
	return nil
}

// logUnsynced logs each change of a committed batch that did not reach the target: a
// failed or held change at warning level, because the target now differs from the
// source until someone acts, and a skipped or rejected one at info level.
func (p *Pipeline) logUnsynced(ctx context.Context, rows *audit) {
	for _, i := range rows.unsynced {
		ev := &rows.events[i]
		level := slog.LevelInfo
		if ev.Status == dbgen.ChangeStatusFailed || ev.Status == dbgen.ChangeStatusHeld {
			level = slog.LevelWarn
		}
		reason := ev.DecisionReason.String
		if ev.Error.Valid {
			reason = ev.Error.String
		}
		p.log.Log(ctx, level, "change not synced", "pipeline", p.cfg.Name, "status", string(ev.Status),
			"change_id", ev.ID.String(), "table", ev.TableName, "row_key", ev.RowKey,
			"change_type", string(ev.ChangeType), "reason", reason, "decided_by", ev.DecidedBy.String)
	}
}

// configuredEvents returns the events of configured tables, for prefetching.
func configuredEvents(a *apply.Applier, txs []*change.Tx) []change.Event {
	var events []change.Event
	for _, tx := range txs {
		for _, ev := range tx.Events {
			if ev.Relation != nil && a.Spec(ev.Relation.Table) != nil {
				events = append(events, ev)
			}
		}
	}
	return events
}

// applyTx decides on and applies each event of one source transaction and collects its
// audit rows. Events of tables that are published but not configured are ignored.
func (p *Pipeline) applyTx(ctx context.Context, b *apply.Batch, tx *change.Tx, now time.Time, rows *audit,
	isolate bool,
) error {
	for i := range tx.Events {
		ev := &tx.Events[i]
		if ev.Relation == nil || p.applier.Spec(ev.Relation.Table) == nil {
			continue
		}
		dec := p.validator.Validate(ctx, tx, ev)
		res := apply.Result{Status: statusOf(dec.Verdict)}
		if dec.Verdict == change.Approve {
			var err error
			if isolate {
				res, err = b.ApplyIsolated(ctx, ev)
			} else {
				res, err = b.Apply(ctx, ev)
			}
			if err != nil {
				return fmt.Errorf("apply %s change %s of %s: %w", ev.Op, ev.ID, ev.Relation.Table, err)
			}
		}
		row, err := p.eventRow(tx, ev, dec, res, now)
		if err != nil {
			return err
		}
		rows.events = append(rows.events, row)
		if res.Status != change.StatusSynced {
			rows.unsynced = append(rows.unsynced, len(rows.events)-1)
		}
		if res.Diff != nil {
			rows.logs = append(rows.logs, syncLogRow(ev, res, row, now))
		}
	}
	return nil
}

// statusOf maps a verdict to the status of a change that was not applied.
func statusOf(v change.Verdict) change.Status {
	switch v {
	case change.Skip:
		return change.StatusSkipped
	case change.Reject:
		return change.StatusRejected
	case change.Hold:
		return change.StatusHeld
	default:
		return change.StatusApproved
	}
}

func (p *Pipeline) eventRow(tx *change.Tx, ev *change.Event, dec change.Decision, res apply.Result,
	now time.Time,
) (dbgen.InsertChangeEventsParams, error) {
	var excluded []string
	if spec := p.applier.Spec(ev.Relation.Table); spec != nil {
		excluded = spec.Exclude
	}
	oldData, err := change.TupleJSONWithout(ev.Relation, ev.Old, excluded)
	if err != nil {
		return dbgen.InsertChangeEventsParams{}, fmt.Errorf("encode old tuple of change %s: %w", ev.ID, err)
	}
	newData, err := change.TupleJSONWithout(ev.Relation, ev.New, excluded)
	if err != nil {
		return dbgen.InsertChangeEventsParams{}, fmt.Errorf("encode new tuple of change %s: %w", ev.ID, err)
	}
	rowKey := res.RowKey
	if rowKey == "" {
		rowKey, _ = p.applier.RowKey(ev) // a change without a readable key keeps an empty row key
	}
	commitLSN, err := store.LSNToBigint(tx.CommitLSN)
	if err != nil {
		return dbgen.InsertChangeEventsParams{}, err
	}

	row := dbgen.InsertChangeEventsParams{
		ID: ev.ID, Pipeline: p.cfg.Name, ThreadID: ev.ThreadID, Seq: int32(ev.Seq),
		RowKey: rowKey, TableName: ev.Relation.Table.String(),
		ChangeType: dbgen.ChangeType(ev.Op), OldData: oldData, NewData: newData,
		DetectedAt: now, Status: dbgen.ChangeStatus(res.Status),
		DecisionReason: text(dec.Reason), DecidedBy: text(dec.DecidedBy),
		Actor: text(actorOf(tx, res)), SourceLSN: commitLSN, Xid: int64(tx.Xid),
		CommitTime: tx.CommitTime,
	}
	if res.Target != (change.TableName{}) {
		row.TargetTable = text(res.Target.String())
	}
	switch {
	case res.Status == change.StatusFailed:
		row.Error = text(res.Reason)
	case res.Reason != "":
		row.DecisionReason = text(res.Reason)
		row.DecidedBy = text("changesync:apply")
	}
	return row, nil
}

// actorOf returns who made a change: the user of the transaction's context message, or
// the value of the table's actor column.
func actorOf(tx *change.Tx, res apply.Result) string {
	if tx.Actor != "" {
		return tx.Actor
	}
	return res.Actor
}

func syncLogRow(ev *change.Event, res apply.Result, row dbgen.InsertChangeEventsParams, now time.Time,
) dbgen.InsertSyncLogParams {
	performedBy := row.Actor.String
	if performedBy == "" {
		performedBy = "changesync"
	}
	return dbgen.InsertSyncLogParams{
		ID:            uuid.NewSHA1(ev.ID, []byte("sync_log")),
		ChangeEventID: ev.ID,
		SourceTable:   row.TableName,
		TargetTable:   res.Target.String(),
		SourceID:      row.RowKey,
		TargetKey:     res.TargetKey,
		Diff:          res.Diff,
		SyncedAt:      now,
		PerformedBy:   performedBy,
		Op:            dbgen.ChangeType(ev.Op),
	}
}

func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
