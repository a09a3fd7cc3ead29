package undo

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// sendWrites sends the planned target writes in order, in one round trip, and checks
// that each affected the row it had to.
func sendWrites(ctx context.Context, tx pgx.Tx, writes []write) error {
	if len(writes) == 0 {
		return nil
	}
	var batch pgconn.Batch
	for _, w := range writes {
		batch.ExecParams(w.sql, w.args, nil, nil, nil)
	}
	results, err := tx.Conn().PgConn().ExecBatch(ctx, &batch).ReadAll()
	for i, r := range results {
		if r.Err != nil {
			return fmt.Errorf("%s: %w", writes[i].what, r.Err)
		}
		if got := r.CommandTag.RowsAffected(); got != writes[i].wantRows {
			return fmt.Errorf("%s: changed %d rows, want %d: the row changed outside its lock",
				writes[i].what, got, writes[i].wantRows)
		}
	}
	if err != nil {
		return fmt.Errorf("send undo writes: %w", err)
	}
	return nil
}

// recordApplied writes the audit of an applied request in its transaction: an
// undo_requests row and the undone status per change, a sync_log row per target write,
// and the undo notification.
func recordApplied(ctx context.Context, tx pgx.Tx, req *Request, requestID uuid.UUID, changes []planned) error {
	now := time.Now().UTC()
	requests, err := undoRequestRows(req, requestID, changes, StatusApplied, "", now)
	if err != nil {
		return err
	}
	q := dbgen.New(tx)
	if _, err := q.InsertUndoRequests(ctx, requests); err != nil {
		if isAppliedTwice(err) {
			return fmt.Errorf("undo request %s: a change of it was undone by a concurrent request: %w",
				requestID, ErrAlreadyUndone)
		}
		return fmt.Errorf("write undo_requests of request %s: %w", requestID, err)
	}

	changeIDs := make([]uuid.UUID, len(changes))
	syncLogIDs := make([]uuid.UUID, len(changes))
	var logs []dbgen.InsertUndoSyncLogParams
	for i, u := range changes {
		changeIDs[i], syncLogIDs[i] = u.p.ev.ID, u.p.ev.SyncLogID.UUID
		if u.change.Diff == nil {
			continue
		}
		row, err := undoSyncLogRow(req, &u, requests[i].ID, now)
		if err != nil {
			return err
		}
		logs = append(logs, row)
	}
	if err := q.MarkChangesUndone(ctx, changeIDs); err != nil {
		return fmt.Errorf("mark %d changes undone: %w", len(changeIDs), err)
	}
	if err := q.MarkSyncLogUndone(ctx, syncLogIDs); err != nil {
		return fmt.Errorf("mark the sync_log rows of %d changes undone: %w", len(syncLogIDs), err)
	}
	if len(logs) > 0 {
		if _, err := q.InsertUndoSyncLog(ctx, logs); err != nil {
			return fmt.Errorf("write sync_log rows of undo request %s: %w", requestID, err)
		}
	}
	return enqueue(ctx, tx, req, requestID, changes, StatusApplied, "", now)
}

// recordOutcome records a request that undid nothing, because of conflicts or because the
// target rejected its writes, in a transaction of its own.
func (e *Executor) recordOutcome(ctx context.Context, req *Request, requestID uuid.UUID, changes []planned,
	status Status, message string,
) error {
	if len(changes) == 0 {
		return nil
	}
	now := time.Now().UTC()
	rows, err := undoRequestRows(req, requestID, changes, status, message, now)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, e.store.Pool, func(tx pgx.Tx) error {
		if _, err := dbgen.New(tx).InsertUndoRequests(ctx, rows); err != nil {
			return fmt.Errorf("write undo_requests of %s request %s: %w", status, requestID, err)
		}
		return enqueue(ctx, tx, req, requestID, changes, status, message, now)
	})
}

// undoRequestRows returns one undo_requests row per change, with the change's conflicts.
func undoRequestRows(req *Request, requestID uuid.UUID, changes []planned, status Status, message string,
	now time.Time,
) ([]dbgen.InsertUndoRequestsParams, error) {
	rows := make([]dbgen.InsertUndoRequestsParams, len(changes))
	for i, u := range changes {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("generate undo_requests id: %w", err)
		}
		var conflicts json.RawMessage
		if len(u.conflicts) > 0 {
			if conflicts, err = json.Marshal(u.conflicts); err != nil {
				return nil, fmt.Errorf("encode conflicts of change %s: %w", u.p.ev.ID, err)
			}
		}
		rows[i] = dbgen.InsertUndoRequestsParams{
			ID: id, RequestID: requestID, ChangeEvent: u.p.ev.ID, Requestor: req.Requestor,
			Reason: req.Reason, Status: dbgen.UndoStatus(status),
			Forced:    req.Force && len(u.conflicts) > 0 && status == StatusApplied,
			Conflicts: conflicts, Error: pgtype.Text{String: message, Valid: message != ""},
		}
		if status == StatusApplied {
			rows[i].UndoneAt = pgtype.Timestamptz{Time: now, Valid: true}
		}
	}
	return rows, nil
}

// undoSyncLogRow records the target write of one undone change in sync_log, under the
// change it undid and the source row key of that change.
func undoSyncLogRow(req *Request, u *planned, undoRequest uuid.UUID, now time.Time,
) (dbgen.InsertUndoSyncLogParams, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return dbgen.InsertUndoSyncLogParams{}, fmt.Errorf("generate sync_log id: %w", err)
	}
	diff, err := json.Marshal(u.change.Diff)
	if err != nil {
		return dbgen.InsertUndoSyncLogParams{}, fmt.Errorf("encode undo diff of change %s: %w", u.p.ev.ID, err)
	}
	key, err := json.Marshal(u.keyAfter)
	if err != nil {
		return dbgen.InsertUndoSyncLogParams{}, fmt.Errorf("encode target key of change %s: %w", u.p.ev.ID, err)
	}
	return dbgen.InsertUndoSyncLogParams{
		ID: id, ChangeEventID: u.p.ev.ID, SourceTable: u.p.ev.TableName, TargetTable: u.p.target.name,
		SourceID: u.p.ev.RowKey, TargetKey: key, Diff: diff, SyncedAt: now,
		PerformedBy: "undo:" + req.Requestor, Op: dbgen.ChangeType(u.writeOp),
		UndoRequest: uuid.NullUUID{UUID: undoRequest, Valid: true}, TargetKeyColumns: u.p.target.key,
	}, nil
}

// enqueue writes the notification of a request. The table, row, change and thread are
// filled in when all changes of the request share them.
func enqueue(ctx context.Context, tx pgx.Tx, req *Request, requestID uuid.UUID, changes []planned,
	status Status, message string, now time.Time,
) error {
	first := changes[0].p
	ev := notify.Event{
		ID: uuid.NewSHA1(requestID, []byte("undo/"+string(status))), Type: notify.EventUndo,
		OccurredAt: now, Pipeline: first.ev.Pipeline, Message: message,
		Undo: &notify.Undo{
			RequestID: requestID, Requestor: req.Requestor, Reason: req.Reason, Status: string(status),
			Changes: len(changes), Forced: req.Force && status == StatusApplied,
		},
	}
	if shared(changes, func(p *pending) string { return p.ev.TableName }) {
		ev.Table, ev.TargetTable = first.ev.TableName, first.target.name
	}
	if shared(changes, func(p *pending) string { return p.ev.ThreadID.String() }) {
		ev.ThreadID = first.ev.ThreadID
	}
	if len(changes) == 1 {
		ev.RowKey, ev.Op, ev.ChangeID = first.ev.RowKey, string(first.op), first.ev.ID
		ev.Changes = notifyChanges(changes[0].change.Diff)
	}
	if _, err := notify.Enqueue(ctx, tx, ev); err != nil {
		return fmt.Errorf("undo request %s: %w", requestID, err)
	}
	return nil
}

func shared(changes []planned, field func(*pending) string) bool {
	for _, u := range changes[1:] {
		if field(u.p) != field(changes[0].p) {
			return false
		}
	}
	return true
}

// notifyChanges turns an undo diff into the changes of a notification.
func notifyChanges(diff map[string]ColumnChange) map[string]notify.ColumnChange {
	if len(diff) == 0 {
		return nil
	}
	out := make(map[string]notify.ColumnChange, len(diff))
	for col, d := range diff {
		out[col] = notify.ColumnChange{Old: jsonValue(d.Old), New: jsonValue(d.New)}
	}
	return out
}

func jsonValue(v *string) json.RawMessage {
	b, _ := json.Marshal(v) // a *string always marshals
	return b
}
