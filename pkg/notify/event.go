package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/store/dbgen"
)

// SchemaVersion is the version of the JSON payload of events and digests. It changes
// only when a field changes meaning or is removed, and new fields keep the version.
const SchemaVersion = 1

// EventType is the kind of a notification. Destinations subscribe to event types.
type EventType string

// The event types that can be enqueued.
const (
	// EventSync is a change written to the target.
	EventSync EventType = "sync"
	// EventHold is a change held for a manual decision.
	EventHold EventType = "hold"
	// EventReject is a change rejected by a rule, the reviewer or a user.
	EventReject EventType = "reject"
	// EventSkip is a change skipped by a rule.
	EventSkip EventType = "skip"
	// EventFailed is an approved change that could not be applied to the target.
	EventFailed EventType = "failed"
	// EventBulkGuard is a source transaction that touched more rows than the bulk guard
	// allows.
	EventBulkGuard EventType = "bulk_guard"
	// EventBurst is a row or table that changed more often in a time window than allowed.
	EventBurst EventType = "burst"
	// EventUndo is an undo request that restored old values, or was refused.
	EventUndo EventType = "undo"
)

// EventTypes lists every event type in a stable order.
var EventTypes = []EventType{
	EventSync, EventHold, EventReject, EventSkip, EventFailed, EventBulkGuard, EventBurst, EventUndo,
}

// digestType is the type field of a digest payload. It is not an EventType because a
// digest cannot be enqueued or subscribed to.
const digestType = "digest"

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool { return slices.Contains(EventTypes, t) }

// Event is one notification as it is stored in the outbox and sent to webhooks. The
// JSON form is the documented payload schema: fields are only added, never renamed.
type Event struct {
	Version int       `json:"version"`
	ID      uuid.UUID `json:"id"`
	Type    EventType `json:"type"`
	// OccurredAt is when the described thing happened, such as the source commit time of
	// a synced change or the time of an undo.
	OccurredAt time.Time `json:"occurred_at"`

	Pipeline    string    `json:"pipeline,omitempty"`
	Table       string    `json:"table,omitempty"`        // source table as schema.table
	TargetTable string    `json:"target_table,omitempty"` // target table as schema.table
	RowKey      string    `json:"row_key,omitempty"`      // in the format of change_events.row_key
	Op          string    `json:"op,omitempty"`           // insert, update, delete or truncate
	ChangeID    uuid.UUID `json:"change_id,omitzero"`
	ThreadID    uuid.UUID `json:"thread_id,omitzero"`
	// Actor is the user who made the source change, when the application recorded one.
	Actor string `json:"actor,omitempty"`

	Decision *Decision `json:"decision,omitempty"`
	// Changes holds the changed columns with their old and new values, in the format of
	// sync_log.diff.
	Changes map[string]ColumnChange `json:"changes,omitempty"`
	Undo    *Undo                   `json:"undo,omitempty"`
	Volume  *Volume                 `json:"volume,omitempty"`
	// Message is a free-text explanation, such as the error of a failed apply.
	Message string `json:"message,omitempty"`
}

// Decision is the verdict of the validation step on a change.
type Decision struct {
	Verdict   string `json:"verdict"` // approve, skip, reject or hold
	Reason    string `json:"reason,omitempty"`
	DecidedBy string `json:"decided_by,omitempty"` // rule name, llm:<model>, guard:bulk or a user
}

// ColumnChange is the old and new value of one column as JSON: a string, null, or
// another JSON value. Old is absent for an insert and New for a delete.
type ColumnChange struct {
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
}

// Undo describes an undo request.
type Undo struct {
	RequestID uuid.UUID `json:"request_id"`
	Requestor string    `json:"requestor"`
	Reason    string    `json:"reason,omitempty"`
	Status    string    `json:"status"`            // applied, conflict or failed
	Changes   int       `json:"changes,omitempty"` // number of changes the request covers
	Forced    bool      `json:"forced,omitempty"`
}

// Volume is the row count behind a bulk_guard or burst event.
type Volume struct {
	Rows  int64 `json:"rows"`
	Limit int64 `json:"limit"`
	// Window is the time window of a burst as a Go duration string, such as "1m0s".
	// It is empty for bulk_guard, whose window is one source transaction.
	Window string `json:"window,omitempty"`
}

// ChangesFromDiff decodes a sync_log diff, {"column": {"old": value, "new": value}},
// into the Changes of an event.
func ChangesFromDiff(diff json.RawMessage) (map[string]ColumnChange, error) {
	var changes map[string]ColumnChange
	if err := json.Unmarshal(diff, &changes); err != nil {
		return nil, fmt.Errorf("decode sync_log diff: %w", err)
	}
	return changes, nil
}

// Enqueue writes ev to the outbox in tx, so that it commits or rolls back with the
// change it describes. tx must run on a connection whose search_path starts with the
// metadata schema, as every connection of a store.Store does.
//
// A zero ID is replaced by a new UUIDv7 and a zero OccurredAt by the current time. An
// event whose ID is already in the outbox is ignored, so a caller that derives the ID
// from the change (for example UUIDv5 of the change id and the type) can replay a
// transaction without sending twice. Enqueue returns the event's ID.
func Enqueue(ctx context.Context, tx pgx.Tx, ev Event) (uuid.UUID, error) {
	if !ev.Type.Valid() {
		return uuid.Nil, fmt.Errorf("enqueue notification: unknown event type %q: use one of %v",
			ev.Type, EventTypes)
	}

	if ev.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return uuid.Nil, fmt.Errorf("enqueue %s notification: generate id: %w", ev.Type, err)
		}
		ev.ID = id
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now()
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	ev.Version = SchemaVersion

	payload, err := json.Marshal(ev)
	if err != nil {
		return uuid.Nil, fmt.Errorf("enqueue %s notification %s: encode payload: %w", ev.Type, ev.ID, err)
	}

	_, err = dbgen.New(tx).InsertOutboxEvent(ctx, dbgen.InsertOutboxEventParams{
		ID:        ev.ID,
		EventType: string(ev.Type),
		Payload:   payload,
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("enqueue %s notification %s: %w", ev.Type, ev.ID, err)
	}
	return ev.ID, nil
}
