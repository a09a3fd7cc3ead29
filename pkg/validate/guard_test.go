package validate

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// bulkTx returns a transaction with n updates of customers, then one order insert and
// deletes deletes of orders.
func bulkTx(xid uint32, n, deletes int) *change.Tx {
	events := make([]change.Event, 0, n+1+deletes)
	for i := range n {
		id := strconv.Itoa(i)
		events = append(events, update(
			row(id, "A", "a", "12345", "1", "n", "app", "t"),
			row(id, "A", "a", "54321", "1", "n", "app", "t")))
	}
	events = append(events, change.Event{Op: change.OpInsert, Relation: orders, New: row("1", "1")})
	for i := range deletes {
		events = append(events, change.Event{Op: change.OpDelete, Relation: orders, Old: row(strconv.Itoa(i), "<absent>")})
	}
	return newTx(xid, events...)
}

func TestGuardHoldsBulkTransaction(t *testing.T) {
	cfg := baseConfig(config.Rule{Name: "approve-all", When: "true", Action: "approve"})
	cfg.Guard.MaxRowsPerTx = 1000
	alerts := &alertLog{}
	a := newAgent(t, cfg, WithAlerts(alerts))

	tx := bulkTx(7, 5000, 0)
	ctx := context.Background()
	for i := range tx.Events {
		got := a.Validate(ctx, tx, &tx.Events[i])
		if got.Verdict != change.Hold || got.DecidedBy != BulkDecider {
			t.Fatalf("event %d: decision = %+v, want hold by %s", i, got, BulkDecider)
		}
	}

	got := alerts.all()
	if len(got) != 1 {
		t.Fatalf("got %d alerts, want 1 for the transaction", len(got))
	}
	alert := got[0]
	if alert.Kind != AlertBulk || alert.Table != customersTable || alert.Xid != 7 {
		t.Errorf("alert = %+v, want a bulk alert on crm.customers for xid 7", alert)
	}
	if alert.Count != 5000 || alert.Limit != 1000 {
		t.Errorf("alert count %d and limit %d, want 5000 and 1000", alert.Count, alert.Limit)
	}
	if alert.ThreadID != tx.ThreadID || alert.CommitLSN != tx.CommitLSN {
		t.Errorf("alert identifies thread %s at %s, want %s at %s", alert.ThreadID, alert.CommitLSN,
			tx.ThreadID, tx.CommitLSN)
	}
	reason := a.Validate(ctx, tx, &tx.Events[0]).Reason
	if !strings.Contains(reason, "changes 5000 rows of crm.customers, more than guard.max_rows_per_tx 1000") {
		t.Errorf("reason = %q, want the count and the limit", reason)
	}
}

func TestGuardAtLimitApproves(t *testing.T) {
	cfg := baseConfig()
	cfg.Guard.MaxRowsPerTx = 1000
	alerts := &alertLog{}
	a := newAgent(t, cfg, WithAlerts(alerts))

	tx := bulkTx(8, 1000, 0)
	for i := range tx.Events {
		if got := a.Validate(context.Background(), tx, &tx.Events[i]); got.Verdict != change.Approve {
			t.Fatalf("event %d: decision = %+v, want approve at the limit", i, got)
		}
	}
	if n := len(alerts.all()); n != 0 {
		t.Errorf("got %d alerts, want none", n)
	}
}

func TestGuardDeletes(t *testing.T) {
	cfg := baseConfig()
	cfg.Guard = config.Guard{MaxDeletesPerTx: 10, Action: "reject"}
	alerts := &alertLog{}
	a := newAgent(t, cfg, WithAlerts(alerts))

	tx := bulkTx(9, 3, 11)
	got := a.Validate(context.Background(), tx, &tx.Events[0])
	if got.Verdict != change.Reject || got.DecidedBy != BulkDecider {
		t.Errorf("decision on a customers update = %+v, want reject by the guard", got)
	}
	if !strings.Contains(got.Reason, "deletes 11 rows of crm.orders, more than guard.max_deletes_per_tx 10") {
		t.Errorf("reason = %q, want the deletes named", got.Reason)
	}
	if n := len(alerts.all()); n != 1 {
		t.Errorf("got %d alerts, want 1", n)
	}

	tx = bulkTx(10, 3, 10)
	if got := a.Validate(context.Background(), tx, &tx.Events[0]); got.Verdict != change.Approve {
		t.Errorf("decision with 10 deletes = %+v, want approve", got)
	}
}

func TestGuardIgnoresUnconfiguredTables(t *testing.T) {
	cfg := baseConfig()
	cfg.Tables = cfg.Tables[:1] // crm.orders is published but not synced
	cfg.Guard.MaxDeletesPerTx = 5
	a := newAgent(t, cfg)

	tx := bulkTx(11, 1, 50)
	if got := a.Validate(context.Background(), tx, &tx.Events[0]); got.Verdict != change.Approve {
		t.Errorf("decision = %+v, want approve because crm.orders is not configured", got)
	}
}

func TestGuardRejectsBadSettings(t *testing.T) {
	if _, err := NewGuard(config.Guard{Action: "approve"}); err == nil {
		t.Error("NewGuard accepted the action approve")
	}
	if _, err := NewGuard(config.Guard{MaxRowsPerTx: -1}); err == nil {
		t.Error("NewGuard accepted a negative limit")
	}
}

// burstConfig alerts at more than 100 changes a minute and 10 times the average of the
// past 10 minutes.
func burstConfig() *config.Config {
	cfg := baseConfig()
	cfg.Guard.Burst = config.Burst{Factor: 10, Window: 10 * time.Minute, MinChanges: 100}
	return cfg
}

// runMinute validates n one-row transactions of customers committed in minute m.
func runMinute(t *testing.T, a *Agent, start time.Time, m, n int) {
	t.Helper()
	for i := range n {
		tx := bulkTx(uint32(m*10_000+i), 1, 0)
		tx.Events = tx.Events[:1]
		tx.CommitTime = start.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Millisecond)
		if got := a.Validate(context.Background(), tx, &tx.Events[0]); got.Verdict != change.Approve {
			t.Fatalf("minute %d: decision = %+v, want approve because a burst holds nothing", m, got)
		}
	}
}

func TestBurstAlertsOncePerMinute(t *testing.T) {
	alerts := &alertLog{}
	a := newAgent(t, burstConfig(), WithAlerts(alerts))
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	for m := range 10 {
		runMinute(t, a, start, m, 20)
	}
	if n := len(alerts.all()); n != 0 {
		t.Fatalf("got %d alerts at a steady 20 changes a minute, want none", n)
	}

	runMinute(t, a, start, 10, 250)
	got := alerts.all()
	if len(got) != 1 {
		t.Fatalf("got %d alerts for a minute of 250 changes, want 1", len(got))
	}
	if got[0].Kind != AlertBurst || got[0].Table != customersTable {
		t.Errorf("alert = %+v, want a burst alert on crm.customers", got[0])
	}
	if got[0].Count != 201 {
		t.Errorf("alert count = %d, want 201, the change that crossed 10 times the average of 20", got[0].Count)
	}
	if !strings.Contains(got[0].Message, "crm.customers received 201 changes in the minute from 2025-03-01T12:10:00Z") {
		t.Errorf("message = %q, want the table, the count and the minute", got[0].Message)
	}

	runMinute(t, a, start, 11, 20)
	if n := len(alerts.all()); n != 1 {
		t.Errorf("got %d alerts after a quiet minute, want still 1", n)
	}
}

func TestBurstNeedsHistoryAndMinimum(t *testing.T) {
	alerts := &alertLog{}
	a := newAgent(t, burstConfig(), WithAlerts(alerts))
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	runMinute(t, a, start, 0, 500) // the first minute has no history to compare with
	runMinute(t, a, start, 20, 1)  // after a gap, the window is all zeros
	runMinute(t, a, start, 30, 99) // far above an average of 0.1, but not over 100
	if n := len(alerts.all()); n != 0 {
		t.Fatalf("got %d alerts, want none", n)
	}

	runMinute(t, a, start, 31, 101)
	if n := len(alerts.all()); n != 1 {
		t.Errorf("got %d alerts for 101 changes after quiet minutes, want 1", n)
	}
}

func TestBurstOff(t *testing.T) {
	cfg := burstConfig()
	cfg.Guard.Burst.Factor = 0
	alerts := &alertLog{}
	a := newAgent(t, cfg, WithAlerts(alerts))
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	for m := range 6 {
		runMinute(t, a, start, m, 1)
	}
	runMinute(t, a, start, 6, 300)
	if n := len(alerts.all()); n != 0 {
		t.Errorf("got %d alerts with burst detection off, want none", n)
	}
}

func TestGuardReasonForTransactionInParts(t *testing.T) {
	cfg := baseConfig()
	cfg.Guard.MaxRowsPerTx = 1000
	a := newAgent(t, cfg, WithAlerts(&alertLog{}))

	whole := bulkTx(11, 1500, 0)
	ctx := context.Background()
	var reason string
	for start := 0; start < len(whole.Events); start += 500 {
		part := *whole
		part.FirstSeq = start
		part.Events = whole.Events[start:min(start+500, len(whole.Events))]
		part.More = start+500 < len(whole.Events)
		if got := a.Validate(ctx, &part, &part.Events[0]); got.DecidedBy == BulkDecider {
			reason = got.Reason
			break
		}
	}
	want := "transaction 11 changes at least 1500 rows of crm.customers, more than " +
		"guard.max_rows_per_tx 1000, so the guard gives each of its changes the verdict hold"
	if reason != want {
		t.Errorf("reason = %q, want %q: a part knows no total", reason, want)
	}
}
