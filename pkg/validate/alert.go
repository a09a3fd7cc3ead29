package validate

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/change"
)

// AlertKind names what raised an alert.
type AlertKind string

// The kinds of alert.
const (
	// AlertBulk is raised once per transaction that the bulk guard decides.
	AlertBulk AlertKind = "guard:bulk"
	// AlertBurst is raised when a table's changes in one minute rise far above its
	// average minute. It decides nothing.
	AlertBurst AlertKind = "guard:burst"
)

// Alert is a notice for operators about a transaction or a table.
type Alert struct {
	Kind  AlertKind
	Table change.TableName // for a bulk alert, the first table over a limit
	// Xid, ThreadID and CommitLSN identify the transaction that raised the alert; for a
	// burst alert, the transaction that crossed the threshold.
	Xid       uint32
	ThreadID  uuid.UUID
	CommitLSN change.LSN
	Time      time.Time // commit time of that transaction
	// Count is the number of row changes that crossed Limit: the rows or deletes of the
	// table in the transaction for a bulk alert, the changes in the minute for a burst.
	Count int
	Limit int
	// Verdict is the decision the bulk guard gave every event of the transaction; empty
	// for a burst alert.
	Verdict change.Verdict
	Message string // one sentence for people, such as a Slack message
}

// Alerts receives alerts. Alert is called on the goroutine that calls Validate and must
// not block for long; an implementation that delivers over the network should queue.
type Alerts interface {
	Alert(ctx context.Context, a Alert)
}

// discardAlerts drops every alert; it is the sink when none is set.
type discardAlerts struct{}

func (discardAlerts) Alert(context.Context, Alert) {}
