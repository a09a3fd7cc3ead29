package undo

import (
	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/change"
)

// Status is the outcome of a request.
type Status string

// The statuses of a Result. planned, applied and conflict are also the undo_status
// values of the undo_requests rows; failed is recorded there when the target rejected
// the undo's writes.
const (
	StatusPlanned  Status = "planned"  // a dry run
	StatusApplied  Status = "applied"  // the changes were undone
	StatusConflict Status = "conflict" // rejected because target values changed
	StatusFailed   Status = "failed"   // the target rejected the undo's writes
)

// Action is the kind of write an undo makes to the target row of one change.
type Action string

// The actions of an undone change.
const (
	ActionDelete  Action = "delete"  // undo of an insert
	ActionInsert  Action = "insert"  // undo of a delete
	ActionUpdate  Action = "update"  // undo of an update, or of a delete over a row that exists again (forced)
	ActionMove    Action = "move"    // undo of an update that changed the key: update and move back
	ActionNothing Action = "nothing" // forced undo of a change whose row is gone
)

// Result is the plan or the outcome of a request.
type Result struct {
	RequestID uuid.UUID `json:"request_id"`
	Status    Status    `json:"status"`
	Forced    bool      `json:"forced,omitempty"`
	// Changes lists the changes the request undoes, or would undo, newest first.
	Changes []Change `json:"changes"`
	// Skipped lists the changes of a thread that changesync did not write to the target,
	// or that were undone before, with the reason.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Conflicts lists every target column that no longer holds the value changesync
	// wrote, and every row that is missing or in the way.
	Conflicts []Conflict `json:"conflicts,omitempty"`
}

// Change is the undo of one change.
type Change struct {
	ChangeID    uuid.UUID `json:"change_id"`
	ThreadID    uuid.UUID `json:"thread_id"`
	Table       string    `json:"table"` // source table as schema.table
	TargetTable string    `json:"target_table"`
	RowKey      string    `json:"row_key"`
	Op          change.Op `json:"op"` // the operation of the undone change
	Action      Action    `json:"action"`
	// Diff is the undo's write in the format of sync_log.diff, with the current target
	// value as old and the restored value as new.
	Diff map[string]ColumnChange `json:"diff,omitempty"`
}

// ColumnChange is the old and new value of one column. A nil pointer is NULL.
type ColumnChange struct {
	Old *string `json:"old"`
	New *string `json:"new"`
}

// Skipped is a change of a thread, row or window scope that the request leaves alone.
type Skipped struct {
	ChangeID uuid.UUID `json:"change_id"`
	Table    string    `json:"table"`
	RowKey   string    `json:"row_key"`
	Op       change.Op `json:"op"`
	Status   string    `json:"status"` // the change_events status
	Reason   string    `json:"reason"`
}

// Conflict is a target value that differs from what changesync wrote. Expected and Found
// are column values, nil for NULL; for a missing or existing row they are both nil and
// Column is empty.
type Conflict struct {
	ChangeID uuid.UUID `json:"change_id"`
	Table    string    `json:"table"` // target table as schema.table
	RowKey   string    `json:"row_key"`
	Column   string    `json:"column,omitempty"`
	Expected *string   `json:"expected"`
	Found    *string   `json:"found"`
	Reason   string    `json:"reason"`
	// Blocking marks a conflict that Force cannot overwrite, such as a row that occupies
	// the old key of a row the undo would move back.
	Blocking bool `json:"blocking,omitempty"`
}

// The reasons of a Conflict.
const (
	ReasonChanged       = "the column changed since the sync"
	ReasonColumnMissing = "the column no longer exists on the target"
	ReasonRowMissing    = "the target row no longer exists"
	ReasonRowExists     = "a target row with this key exists again"
	ReasonKeyTaken      = "a target row occupies the old key the row would move back to"
	ReasonTableMissing  = "the target table no longer exists"
)
