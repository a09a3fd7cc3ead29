package validate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

var customersTable = change.TableName{Schema: "crm", Name: "customers"}

// customers is crm.customers of the reference scenario, with a price, free-text notes
// and the column the application writes its user to.
var customers = &change.Relation{
	OID:   16400,
	Table: customersTable,
	Columns: []change.Column{
		{Name: "id", TypeOID: pgtype.Int4OID, Key: true},
		{Name: "name", TypeOID: pgtype.TextOID},
		{Name: "address", TypeOID: pgtype.TextOID},
		{Name: "zip", TypeOID: pgtype.TextOID},
		{Name: "price", TypeOID: pgtype.NumericOID},
		{Name: "notes", TypeOID: pgtype.TextOID},
		{Name: "updated_by", TypeOID: pgtype.TextOID},
		{Name: "active", TypeOID: pgtype.BoolOID},
	},
}

var orders = &change.Relation{
	OID:   16500,
	Table: change.TableName{Schema: "crm", Name: "orders"},
	Columns: []change.Column{
		{Name: "id", TypeOID: pgtype.Int8OID, Key: true},
		{Name: "customer_id", TypeOID: pgtype.Int4OID},
	},
}

// row is a customers tuple in column order. A value "<null>" is NULL and "<toast>" is
// an unchanged TOAST value.
func row(values ...string) change.Tuple {
	t := make(change.Tuple, len(values))
	for i, v := range values {
		switch v {
		case "<null>":
			t[i] = change.NullValue()
		case "<toast>":
			t[i] = change.Value{Kind: change.Unchanged}
		case "<absent>":
			t[i] = change.Value{Kind: change.Absent}
		default:
			t[i] = change.TextValue(v)
		}
	}
	return t
}

// alice is the customer row before the scenario's address change.
func alice() change.Tuple {
	return row("2", "Alice", "1 Old Road", "12345", "10.50", "likes email", "crm-app", "t")
}

// update returns an UPDATE of customers from old to new.
func update(old, new change.Tuple) change.Event {
	return change.Event{Op: change.OpUpdate, Relation: customers, Old: old, New: new}
}

// newTx returns a stamped transaction of the events, committed at a fixed time.
func newTx(xid uint32, events ...change.Event) *change.Tx {
	tx := &change.Tx{
		Xid: xid, CommitLSN: change.LSN(xid) << 8,
		CommitTime: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Events: events,
	}
	tx.Stamp("test")
	return tx
}

// baseConfig returns a configuration with crm.customers and crm.orders and the rules.
func baseConfig(rules ...config.Rule) *config.Config {
	return &config.Config{
		Tables: []config.Table{
			{Source: customersTable, ActorColumn: "updated_by"},
			{Source: orders.Table},
		},
		Rules:         rules,
		RuleCostLimit: config.DefaultRuleCostLimit,
		Guard:         config.Guard{Action: "hold"},
	}
}

func newAgent(t testing.TB, cfg *config.Config, opts ...Option) *Agent {
	t.Helper()
	a, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// validateOne decides the only event of a new transaction.
func validateOne(t testing.TB, a *Agent, ev change.Event) change.Decision {
	t.Helper()
	tx := newTx(100, ev)
	return a.Validate(context.Background(), tx, &tx.Events[0])
}

// alertLog records alerts.
type alertLog struct {
	mu     sync.Mutex
	alerts []Alert
}

func (l *alertLog) Alert(_ context.Context, a Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alerts = append(l.alerts, a)
}

func (l *alertLog) all() []Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Alert(nil), l.alerts...)
}
