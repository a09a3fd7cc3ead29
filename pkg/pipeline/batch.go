package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
	"github.com/datasense/changesync/pkg/validate"
)

// audit collects the metadata rows of a batch.
type audit struct {
	events []dbgen.InsertChangeEventsParams
	logs   []dbgen.InsertSyncLogParams
	// unsynced collects the events that were not synced, such as failed or held
	// applies, which are logged once the batch commits.
	unsynced unsyncedLog
	// queued is the number of events given to Notify that were written to the outbox.
	queued int
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
	fresh := p.fresh(batch)
	if len(fresh) == 0 {
		p.src.Confirm(last.EndLSN)
		return nil
	}

	start := time.Now()
	dbtx, err := p.store.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin target transaction: %w", err)
	}
	defer dbtx.Rollback(ctx)

	b := p.applier.Begin(dbtx)
	rows, err := p.write(ctx, dbtx, b, fresh, isolate)
	if err != nil {
		return err
	}
	if err := p.finish(ctx, dbtx, last, len(fresh), len(rows.events)); err != nil {
		return err
	}
	counts := statusCounts{}
	counts.add(rows.events)
	p.observe(counts, len(rows.events), start, last)
	p.written(rows.queued)
	p.logUnsynced(ctx, &rows.unsynced)
	return nil
}

// statusCounts counts recorded changes by source table and status, for the metrics.
type statusCounts map[[2]string]int

func (c statusCounts) add(events []dbgen.InsertChangeEventsParams) {
	for i := range events {
		c[[2]string{events[i].TableName, string(events[i].Status)}]++
	}
}

// observe updates the metrics after a target transaction of events changes committed.
func (p *Pipeline) observe(counts statusCounts, events int, start time.Time, last *change.Tx) {
	if p.metrics == nil {
		return
	}
	for k, n := range counts {
		p.metrics.Change(k[0], k[1], n)
	}
	p.metrics.Batch(events, time.Since(start), last.CommitTime)
}

// fresh returns the transactions of batch above the checkpoint.
func (p *Pipeline) fresh(batch []*change.Tx) []*change.Tx {
	fresh := make([]*change.Tx, 0, len(batch))
	for _, tx := range batch {
		if tx.CommitLSN > p.checkpoint {
			fresh = append(fresh, tx)
		}
	}
	return fresh
}

// write applies txs in the open target transaction and writes their audit rows.
func (p *Pipeline) write(ctx context.Context, dbtx pgx.Tx, b *apply.Batch, txs []*change.Tx, isolate bool,
) (audit, error) {
	var rows audit
	held, err := loadHeld(ctx, dbtx, p.cfg.Name)
	if err != nil {
		return rows, err
	}
	if !isolate {
		if err := b.Prefetch(ctx, configuredEvents(p.applier, txs)); err != nil {
			return rows, err
		}
	}
	// Every change gets a change_events row and most get a sync_log row, so both are
	// sized for all changes rather than grown by appends.
	events := countEvents(txs)
	rows.events = make([]dbgen.InsertChangeEventsParams, 0, events)
	rows.logs = make([]dbgen.InsertSyncLogParams, 0, events)
	now := time.Now().UTC()
	for _, tx := range txs {
		if err := p.applyTx(ctx, b, tx, now, &rows, held, isolate); err != nil {
			return rows, err
		}
	}
	if err := b.Flush(ctx); err != nil {
		return rows, err
	}

	q := dbgen.New(dbtx)
	if len(rows.events) > 0 {
		if _, err := q.InsertChangeEvents(ctx, rows.events); err != nil {
			return rows, fmt.Errorf("write change_events: %w", err)
		}
	}
	if len(rows.logs) > 0 {
		if _, err := q.InsertSyncLog(ctx, rows.logs); err != nil {
			return rows, fmt.Errorf("write sync_log: %w", err)
		}
	}
	n, err := p.enqueue(ctx, dbtx, &rows)
	rows.queued = n
	return rows, err
}

// finish saves the checkpoint of last, commits the target transaction and confirms the
// end of last to the slot.
func (p *Pipeline) finish(ctx context.Context, dbtx pgx.Tx, last *change.Tx, txs, events int) error {
	if err := store.SaveCheckpoint(ctx, dbtx, p.cfg.Name, p.cfg.Slot, last.CommitLSN, last.EndLSN); err != nil {
		return err
	}
	if err := dbtx.Commit(ctx); err != nil {
		return fmt.Errorf("commit target transaction: %w", err)
	}
	p.checkpoint = last.CommitLSN
	p.src.Confirm(last.EndLSN)
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("batch committed", "pipeline", p.cfg.Name, "transactions", txs,
			"events", events, "lsn", last.CommitLSN.String())
	}
	return nil
}

// commitLarge commits a batch whose last transaction arrives in parts. The parts are
// applied one after the other in the batch's target transaction, and each part's rows
// are released once written, so memory stays bounded whatever the transaction's size.
// The target transaction commits with the last part. Consumed parts cannot be read
// again, so a failure returns errRestart, and the stream restarts from the checkpoint.
func (p *Pipeline) commitLarge(ctx, group context.Context, batch []*change.Tx, batches <-chan []*change.Tx,
) error {
	last := batch[len(batch)-1]
	if last.CommitLSN <= p.checkpoint {
		// A replay of a transaction applied before: its parts are only passed over.
		return p.skipParts(ctx, group, last, batches)
	}
	work := context.WithoutCancel(ctx)
	dbtx, err := p.store.Pool.Begin(work)
	if err != nil {
		return p.restart(last, fmt.Errorf("begin target transaction: %w", err))
	}
	defer dbtx.Rollback(work)

	isolate := p.isolateLSN == last.CommitLSN
	b := p.applier.Begin(dbtx)
	parts := p.fresh(batch)
	var unsynced unsyncedLog
	txCount, events, queued := len(parts), 0, 0
	bulkFromStart := false
	start := time.Now()
	counts := statusCounts{}
	for {
		rows, err := p.write(work, dbtx, b, parts, isolate)
		if err != nil {
			return p.restart(last, err)
		}
		if bulk := bulkDecided(rows.events, last); last.FirstSeq == 0 {
			bulkFromStart = bulk
		} else if bulk && !bulkFromStart {
			// The guard crossed its limit in a later part, after earlier parts were
			// applied; the replay holds the transaction from its first change on.
			return fmt.Errorf("%w: the bulk guard decided transaction %s at its change %d",
				errRestart, last.CommitLSN, last.FirstSeq)
		}
		events += len(rows.events)
		queued = max(queued, rows.queued)
		counts.add(rows.events)
		unsynced.merge(&rows.unsynced)
		b.ForgetRows()
		if !last.More {
			break
		}
		part, err := p.nextPart(ctx, group, last, batches)
		if part == nil {
			return err // nil on shutdown: nothing of the transaction is committed or confirmed
		}
		last, parts = part, []*change.Tx{part}
	}
	if err := p.finish(work, dbtx, last, txCount, events); err != nil {
		return p.restart(last, err)
	}
	p.observe(counts, events, start, last)
	p.written(queued)
	p.logUnsynced(work, &unsynced)
	return nil
}

// bulkDecided reports whether the bulk guard decided the events of tx among rows.
func bulkDecided(rows []dbgen.InsertChangeEventsParams, tx *change.Tx) bool {
	for i := range rows {
		if rows[i].ThreadID == tx.ThreadID && rows[i].DecidedBy.String == validate.BulkDecider {
			return true
		}
	}
	return false
}

// nextPart receives the part that follows prev. Events of a part that were already
// applied, because the stream sent the transaction again after a reconnect, are dropped.
// It returns nil and a nil error when ctx or group ends first, and errRestart when a
// transaction other than prev's arrives.
func (p *Pipeline) nextPart(ctx, group context.Context, prev *change.Tx, batches <-chan []*change.Tx,
) (*change.Tx, error) {
	select {
	case <-ctx.Done():
		return nil, nil
	case <-group.Done():
		return nil, nil
	case batch := <-batches:
		part := batch[0]
		if part.CommitLSN != prev.CommitLSN || len(batch) > 1 {
			return nil, fmt.Errorf("%w: transaction %s arrived before the last part of %s",
				errRestart, batch[len(batch)-1].CommitLSN, prev.CommitLSN)
		}
		next := prev.FirstSeq + len(prev.Events)
		skip := min(max(next-part.FirstSeq, 0), len(part.Events))
		part.Events = part.Events[skip:]
		part.FirstSeq += skip
		return part, nil
	}
}

// skipParts passes over the remaining parts of a transaction at or below the checkpoint
// and confirms its end.
func (p *Pipeline) skipParts(ctx, group context.Context, last *change.Tx, batches <-chan []*change.Tx) error {
	for last.More {
		part, err := p.nextPart(ctx, group, last, batches)
		if part == nil {
			return err
		}
		last = part
	}
	p.src.Confirm(last.EndLSN)
	return nil
}

// restart returns errRestart for a failure of a transaction that arrives in parts. When
// the target rejected a change, the replay applies that transaction change by change.
func (p *Pipeline) restart(tx *change.Tx, err error) error {
	if apply.IsTargetRejection(err) {
		p.isolateLSN = tx.CommitLSN
	}
	return fmt.Errorf("%w: %w", errRestart, err)
}

// configuredEvents returns the events of configured tables, for prefetching.
func configuredEvents(a *apply.Applier, txs []*change.Tx) []change.Event {
	events := make([]change.Event, 0, countEvents(txs))
	for _, tx := range txs {
		for _, ev := range tx.Events {
			if ev.Relation != nil && a.Spec(ev.Relation.Table) != nil {
				events = append(events, ev)
			}
		}
	}
	return events
}

// countEvents returns the number of events of txs.
func countEvents(txs []*change.Tx) int {
	n := 0
	for _, tx := range txs {
		n += len(tx.Events)
	}
	return n
}

// applyTx decides on and applies each event of one source transaction and collects its
// audit rows. Events of tables that are published but not configured are ignored.
func (p *Pipeline) applyTx(ctx context.Context, b *apply.Batch, tx *change.Tx, now time.Time, rows *audit,
	held heldRows, isolate bool,
) error {
	for i := range tx.Events {
		ev := &tx.Events[i]
		if ev.Relation == nil || p.applier.Spec(ev.Relation.Table) == nil {
			continue
		}
		dec := p.validator.Validate(ctx, tx, ev)
		res, approved := p.decideRow(held, ev, dec)
		if approved {
			var err error
			actx := apply.WithTxActor(ctx, tx.Actor) // the actor of the table's transforms
			if isolate {
				res, err = b.ApplyIsolated(actx, ev)
			} else {
				res, err = b.Apply(actx, ev)
			}
			if err != nil {
				return fmt.Errorf("apply %s change %s of %s: %w", ev.Op, ev.ID, ev.Relation.Table, err)
			}
			if res.Status == change.StatusHeld { // a TRUNCATE under truncate: hold
				held.add(ev.Relation.Table.String(), p.applier.RowKeys(ev))
			}
		}
		row, err := p.eventRow(tx, ev, dec, res, now)
		if err != nil {
			return err
		}
		rows.events = append(rows.events, row)
		if res.Status != change.StatusSynced {
			rows.unsynced.add(&rows.events[len(rows.events)-1])
		}
		if res.Diff != nil {
			rows.logs = append(rows.logs, syncLogRow(ev.ID, row.TableName, row.RowKey,
				cmp.Or(row.Actor.String, "changesync"), cmp.Or(res.Op, ev.Op), res, now))
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
	// A release applies held and blocked changes from their change_events row, so those
	// keep every value whole.
	maxValueBytes := p.cfg.AuditMaxValueBytes
	if res.Status == change.StatusHeld || res.Status == change.StatusBlocked {
		maxValueBytes = 0
	}
	oldData, err := change.TupleAuditJSON(ev.Relation, ev.Old, excluded, maxValueBytes)
	if err != nil {
		return dbgen.InsertChangeEventsParams{}, fmt.Errorf("encode old tuple of change %s: %w", ev.ID, err)
	}
	newData, err := change.TupleAuditJSON(ev.Relation, ev.New, excluded, maxValueBytes)
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
		Actor: text(p.actorOf(tx, ev)), SourceLSN: commitLSN, Xid: int64(tx.Xid),
		CommitTime: tx.CommitTime,
	}
	if res.Target != (change.TableName{}) {
		row.TargetTable = text(res.Target.String())
	}
	switch {
	case res.Status == change.StatusFailed:
		row.Error = text(res.Reason)
	case res.Status == change.StatusBlocked:
		row.DecisionReason = text(res.Reason)
		row.DecidedBy = text("changesync:order")
	case res.Reason != "":
		row.DecisionReason = text(res.Reason)
		row.DecidedBy = text("changesync:apply")
	}
	return row, nil
}

// actorOf returns who made a change: the user of the transaction's context message, or
// the value of the table's actor column.
func (p *Pipeline) actorOf(tx *change.Tx, ev *change.Event) string {
	if tx.Actor != "" {
		return tx.Actor
	}
	return p.applier.Actor(ev)
}

// syncLogRow returns the sync_log row of the write that res describes, for the change
// changeID of the source table and row. Its id derives from the change, so a replay
// writes the same row.
func syncLogRow(changeID uuid.UUID, table, rowKey, performedBy string, op change.Op, res apply.Result,
	now time.Time,
) dbgen.InsertSyncLogParams {
	return dbgen.InsertSyncLogParams{
		ID:            change.NameUUID(changeID, syncLogName),
		ChangeEventID: changeID,
		SourceTable:   table,
		TargetTable:   res.Target.String(),
		SourceID:      rowKey,
		TargetKey:     res.TargetKey,
		Diff:          res.Diff,
		SyncedAt:      now,
		PerformedBy:   performedBy,
		Op:            dbgen.ChangeType(op),

		TargetKeyColumns: res.TargetKeyColumns,
	}
}

// syncLogName is the name that derives a sync_log id from its change id.
var syncLogName = []byte("sync_log")

func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
