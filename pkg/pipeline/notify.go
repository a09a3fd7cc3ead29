package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// Wants reports whether some notification destination takes events of a type about a
// source table; notify.Config.Wants is one.
type Wants func(t notify.EventType, table string) bool

// WithNotifications makes the pipeline write an outbox event for each change whose type
// wants accepts, in the transaction of the change, and write the events given to
// Notify.
func WithNotifications(wants Wants) Option { return func(p *Pipeline) { p.wants = wants } }

// outbox holds the events given to Notify until a batch that wrote them commits.
type outbox struct {
	mu      sync.Mutex
	pending []notify.Event
}

// Notify queues an event, such as a validation alert, for the outbox. It is written in
// the transaction of the batch being applied, or of the next one. A batch that rolls back
// writes it again, so give the event an ID derived from what it describes: the outbox
// ignores a copy. Notify is safe for concurrent use.
func (p *Pipeline) Notify(ev notify.Event) {
	p.outbox.mu.Lock()
	defer p.outbox.mu.Unlock()
	p.outbox.pending = append(p.outbox.pending, ev)
}

// enqueue writes the queued events and an event for each change of rows that a
// destination wants. It returns how many queued events it wrote, to drop after commit.
func (p *Pipeline) enqueue(ctx context.Context, dbtx pgx.Tx, rows *audit) (int, error) {
	p.outbox.mu.Lock()
	pending := append([]notify.Event(nil), p.outbox.pending...)
	p.outbox.mu.Unlock()
	for _, ev := range pending {
		if _, err := notify.Enqueue(ctx, dbtx, ev); err != nil {
			return 0, fmt.Errorf("write %s event to the outbox: %w", ev.Type, err)
		}
	}
	if p.wants == nil {
		return len(pending), nil
	}

	diffs := make(map[uuid.UUID][]byte, len(rows.logs))
	for _, l := range rows.logs {
		diffs[l.ChangeEventID] = l.Diff
	}
	for i := range rows.events {
		row := &rows.events[i]
		typ := eventType(row.Status)
		if typ == "" || !p.wants(typ, row.TableName) {
			continue
		}
		ev, err := changeEvent(p.cfg.Name, typ, row, diffs[row.ID])
		if err != nil {
			return 0, err
		}
		if _, err := notify.Enqueue(ctx, dbtx, ev); err != nil {
			return 0, fmt.Errorf("write %s event of change %s to the outbox: %w", typ, row.ID, err)
		}
	}
	return len(pending), nil
}

// written drops the first n queued events after the batch that wrote them committed.
func (p *Pipeline) written(n int) {
	p.outbox.mu.Lock()
	defer p.outbox.mu.Unlock()
	p.outbox.pending = p.outbox.pending[n:]
}

// eventType maps the status of a change to its notification type, or "" for none.
func eventType(s dbgen.ChangeStatus) notify.EventType {
	switch s {
	case dbgen.ChangeStatusSynced:
		return notify.EventSync
	case dbgen.ChangeStatusHeld:
		return notify.EventHold
	case dbgen.ChangeStatusRejected:
		return notify.EventReject
	case dbgen.ChangeStatusSkipped:
		return notify.EventSkip
	case dbgen.ChangeStatusFailed:
		return notify.EventFailed
	}
	return ""
}

// changeEvent builds the notification of one change. Its ID derives from the change and
// the type, so a replayed batch does not notify twice.
func changeEvent(pipeline string, typ notify.EventType, row *dbgen.InsertChangeEventsParams, diff []byte,
) (notify.Event, error) {
	ev := notify.Event{
		ID: uuid.NewSHA1(row.ID, []byte("notify/"+string(typ))), Type: typ,
		OccurredAt: row.CommitTime, Pipeline: pipeline, Table: row.TableName,
		TargetTable: row.TargetTable.String, RowKey: row.RowKey, Op: string(row.ChangeType),
		ChangeID: row.ID, ThreadID: row.ThreadID, Actor: row.Actor.String,
		Message: row.Error.String,
	}
	if typ != notify.EventSync {
		verdict := map[notify.EventType]string{
			notify.EventHold: "hold", notify.EventReject: "reject", notify.EventSkip: "skip",
			notify.EventFailed: "approve",
		}[typ]
		ev.Decision = &notify.Decision{
			Verdict: verdict, Reason: row.DecisionReason.String,
			DecidedBy: row.DecidedBy.String,
		}
	}
	if len(diff) > 0 {
		changes, err := notify.ChangesFromDiff(json.RawMessage(diff))
		if err != nil {
			return notify.Event{}, err
		}
		ev.Changes = changes
	}
	return ev, nil
}
