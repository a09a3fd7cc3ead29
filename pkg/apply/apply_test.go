package apply

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
)

var customers = change.TableName{Schema: "crm", Name: "customers"}

// customersRel is the relation of crm.customers(id, name, address, zip, notes).
var customersRel = &change.Relation{
	OID: 1, Table: customers, ReplicaIdentity: 'd',
	Columns: []change.Column{
		{Name: "id", Key: true}, {Name: "name"}, {Name: "address"}, {Name: "zip"}, {Name: "notes"},
	},
}

func tv(s string) change.Value { return change.TextValue(s) }

var (
	null      = change.NullValue()
	unchanged = change.Value{Kind: change.Unchanged}
)

// setupTarget creates billing.customers on a fresh database and returns a connection.
func setupTarget(t *testing.T, ddl string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "CREATE SCHEMA billing; "+ddl); err != nil {
		t.Fatal(err)
	}
	return conn
}

const customersDDL = `CREATE TABLE billing.customers (
	id int PRIMARY KEY, name text, billing_address text, zip text,
	version int GENERATED ALWAYS AS IDENTITY, zip_len int GENERATED ALWAYS AS (length(zip)) STORED)`

func defaultSpec() TableSpec {
	return TableSpec{
		Source:  customers,
		Target:  change.TableName{Schema: "billing", Name: "customers"},
		Columns: map[string]string{"address": "billing_address"},
		Exclude: []string{"notes"},
	}
}

// applyAll applies events in one transaction and returns their results.
func applyAll(t *testing.T, conn *pgx.Conn, a *Applier, events ...change.Event) []Result {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	b := a.Begin(tx)
	if err := b.Prefetch(ctx, events); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	var results []Result
	for i := range events {
		r, err := b.Apply(ctx, &events[i])
		if err != nil {
			t.Fatalf("Apply event %d: %v", i, err)
		}
		results = append(results, r)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return results
}

func newApplier(t *testing.T, conn *pgx.Conn, policy Policy, specs ...TableSpec) *Applier {
	t.Helper()
	a, err := New(context.Background(), conn, specs, policy, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func insertEv(vals ...change.Value) change.Event {
	return change.Event{Op: change.OpInsert, Relation: customersRel, New: vals}
}

func updateEv(old, newT change.Tuple) change.Event {
	return change.Event{
		Op: change.OpUpdate, Relation: customersRel, Old: old, New: newT,
		OldKeyOnly: old != nil,
	}
}

type customerRow struct {
	Name, Address, Zip *string
	Version, ZipLen    *int
}

func readCustomer(t *testing.T, conn *pgx.Conn, id int) (customerRow, bool) {
	t.Helper()
	var r customerRow
	err := conn.QueryRow(context.Background(),
		"SELECT name, billing_address, zip, version, zip_len FROM billing.customers WHERE id = $1", id).
		Scan(&r.Name, &r.Address, &r.Zip, &r.Version, &r.ZipLen)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

func diffOf(t *testing.T, r Result) map[string]map[string]any {
	t.Helper()
	if r.Diff == nil {
		return nil
	}
	var d map[string]map[string]any
	if err := json.Unmarshal(r.Diff, &d); err != nil {
		t.Fatalf("diff %s is not JSON: %v", r.Diff, err)
	}
	return d
}

func TestApplyInsertThenDeltaUpdate(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())

	res := applyAll(t, conn, a, insertEv(tv("1"), tv("Ann"), tv("1 Main St"), tv("12345"), tv("secret")))
	if res[0].Status != change.StatusSynced {
		t.Fatalf("insert status = %s (%s), want synced", res[0].Status, res[0].Reason)
	}
	if d := diffOf(t, res[0]); len(d) != 4 || d["billing_address"]["new"] != "1 Main St" {
		t.Errorf("insert diff = %v, want the 4 mapped columns", d)
	}
	row, ok := readCustomer(t, conn, 1)
	if !ok || *row.Address != "1 Main St" || *row.Zip != "12345" {
		t.Fatalf("after insert row = %+v (found %v)", row, ok)
	}
	if row.Version == nil || row.ZipLen == nil || *row.ZipLen != 5 {
		t.Errorf("identity or generated column not filled by the target: %+v", row)
	}

	res = applyAll(t, conn, a, updateEv(nil, change.Tuple{tv("1"), tv("Ann"), tv("2 Oak Ave"), tv("54321"), tv("x")}))
	d := diffOf(t, res[0])
	if len(d) != 2 {
		t.Fatalf("update diff = %v, want only billing_address and zip", d)
	}
	if d["billing_address"]["old"] != "1 Main St" || d["billing_address"]["new"] != "2 Oak Ave" {
		t.Errorf("billing_address diff = %v", d["billing_address"])
	}
	if d["zip"]["old"] != "12345" || d["zip"]["new"] != "54321" {
		t.Errorf("zip diff = %v", d["zip"])
	}
	if res[0].RowKey != "1" {
		t.Errorf("row key = %q, want 1", res[0].RowKey)
	}
}

func TestApplyNoOpUpdateWritesNothing(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	applyAll(t, conn, a, insertEv(tv("1"), tv("Ann"), tv("a"), tv("1"), null))

	res := applyAll(t, conn, a, updateEv(nil, change.Tuple{tv("1"), tv("Ann"), tv("a"), tv("1"), tv("changed notes")}))
	if res[0].Status != change.StatusSynced || res[0].Diff != nil {
		t.Errorf("no-op update: status %s diff %s, want synced and no diff", res[0].Status, res[0].Diff)
	}
}

func TestApplyUnchangedToastNotWritten(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	applyAll(t, conn, a, insertEv(tv("1"), tv("Ann"), tv("long address"), tv("1"), null))

	res := applyAll(t, conn, a, updateEv(nil, change.Tuple{tv("1"), tv("Anne"), unchanged, tv("1"), null}))
	d := diffOf(t, res[0])
	if _, ok := d["billing_address"]; ok || len(d) != 1 {
		t.Errorf("diff = %v, want only name", d)
	}
	row, _ := readCustomer(t, conn, 1)
	if row.Address == nil || *row.Address != "long address" {
		t.Errorf("address = %v, want the old value kept", row.Address)
	}
}

func TestApplyNullEmptyAndNULLStayApart(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	applyAll(t, conn, a,
		insertEv(tv("1"), null, tv(""), tv("NULL"), null))

	row, _ := readCustomer(t, conn, 1)
	if row.Name != nil {
		t.Errorf("name = %q, want SQL NULL", *row.Name)
	}
	if row.Address == nil || *row.Address != "" {
		t.Errorf("address = %v, want empty string", row.Address)
	}
	if row.Zip == nil || *row.Zip != "NULL" {
		t.Errorf("zip = %v, want the string NULL", row.Zip)
	}

	res := applyAll(t, conn, a, updateEv(nil, change.Tuple{tv("1"), tv(""), null, tv("NULL"), null}))
	d := diffOf(t, res[0])
	if len(d) != 2 {
		t.Errorf("diff = %v, want name (NULL to '') and billing_address ('' to NULL)", d)
	}
}

func TestApplyKeyChangeMovesRow(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	applyAll(t, conn, a, insertEv(tv("1"), tv("Ann"), tv("a"), tv("1"), null))

	old := change.Tuple{tv("1"), {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}}
	res := applyAll(t, conn, a, updateEv(old, change.Tuple{tv("7"), tv("Ann"), tv("a"), tv("1"), null}))
	if res[0].Status != change.StatusSynced {
		t.Fatalf("status = %s (%s)", res[0].Status, res[0].Reason)
	}
	if _, ok := readCustomer(t, conn, 1); ok {
		t.Error("row 1 still exists after its key moved to 7")
	}
	if _, ok := readCustomer(t, conn, 7); !ok {
		t.Error("row 7 missing after the key move")
	}
}

func TestApplyKeySwapInOneBatch(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	applyAll(t, conn, a,
		insertEv(tv("1"), tv("one"), null, null, null),
		insertEv(tv("2"), tv("two"), null, null, null))

	keyOnly := func(k string) change.Tuple {
		return change.Tuple{tv(k), {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}}
	}
	applyAll(t, conn, a,
		updateEv(keyOnly("1"), change.Tuple{tv("3"), tv("one"), null, null, null}),
		updateEv(keyOnly("2"), change.Tuple{tv("1"), tv("two"), null, null, null}),
		updateEv(keyOnly("3"), change.Tuple{tv("2"), tv("one"), null, null, null}))

	for id, want := range map[int]string{1: "two", 2: "one"} {
		row, ok := readCustomer(t, conn, id)
		if !ok || row.Name == nil || *row.Name != want {
			t.Errorf("row %d = %+v (found %v), want name %s", id, row, ok, want)
		}
	}
	if _, ok := readCustomer(t, conn, 3); ok {
		t.Error("row 3 left behind by the swap")
	}
}

func TestApplyDeleteMissingRowIsNoOp(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	ev := change.Event{
		Op: change.OpDelete, Relation: customersRel,
		Old: change.Tuple{tv("9"), {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}}, OldKeyOnly: true,
	}
	res := applyAll(t, conn, a, ev)
	if res[0].Status != change.StatusSynced || res[0].Diff != nil || res[0].Reason == "" {
		t.Errorf("delete of a missing row = %+v, want synced, no diff and a reason", res[0])
	}
}

func TestApplyDeleteRecordsOldValues(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	applyAll(t, conn, a, insertEv(tv("1"), tv("Ann"), tv("a"), tv("1"), null))
	ev := change.Event{
		Op: change.OpDelete, Relation: customersRel,
		Old: change.Tuple{tv("1"), {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}, {Kind: change.Absent}}, OldKeyOnly: true,
	}
	res := applyAll(t, conn, a, ev)
	d := diffOf(t, res[0])
	if d["name"]["old"] != "Ann" || d["name"]["new"] != nil {
		t.Errorf("delete diff of name = %v, want old Ann and new null", d["name"])
	}
	if _, ok := readCustomer(t, conn, 1); ok {
		t.Error("row 1 still exists after delete")
	}
}

func TestApplyRowPolicies(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		ev         change.Event
		wantStatus change.Status
		wantRow    bool
	}{
		{"update missing inserts", Policy{}, updateEv(nil, change.Tuple{tv("5"), tv("E"), null, null, null}), change.StatusSynced, true},
		{"update missing skip", Policy{OnMissingRow: MissingRowSkip}, updateEv(nil, change.Tuple{tv("5"), tv("E"), null, null, null}), change.StatusSkipped, false},
		{"update missing fail", Policy{OnMissingRow: MissingRowFail}, updateEv(nil, change.Tuple{tv("5"), tv("E"), null, null, null}), change.StatusFailed, false},
		{"update missing with toast", Policy{}, updateEv(nil, change.Tuple{tv("5"), tv("E"), unchanged, null, null}), change.StatusFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := setupTarget(t, customersDDL)
			a := newApplier(t, conn, tt.policy, defaultSpec())
			res := applyAll(t, conn, a, tt.ev)
			if res[0].Status != tt.wantStatus {
				t.Errorf("status = %s (%s), want %s", res[0].Status, res[0].Reason, tt.wantStatus)
			}
			if _, ok := readCustomer(t, conn, 5); ok != tt.wantRow {
				t.Errorf("row exists = %v, want %v", ok, tt.wantRow)
			}
		})
	}
}

func TestApplyInsertOnExistingRow(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	_, err := conn.Exec(context.Background(), "INSERT INTO billing.customers (id, name) VALUES (1, 'old')")
	if err != nil {
		t.Fatal(err)
	}
	strict := newApplier(t, conn, Policy{OnExistingRow: ExistingRowFail}, defaultSpec())
	res := applyAll(t, conn, strict, insertEv(tv("1"), tv("new"), null, null, null))
	if res[0].Status != change.StatusFailed {
		t.Errorf("on_existing_row fail: status = %s, want failed", res[0].Status)
	}

	lenient := newApplier(t, conn, Policy{}, defaultSpec())
	res = applyAll(t, conn, lenient, insertEv(tv("1"), tv("new"), null, null, null))
	if d := diffOf(t, res[0]); len(d) != 1 || d["name"]["old"] != "old" {
		t.Errorf("on_existing_row update: diff = %v, want name old -> new", d)
	}
}

func TestApplyTruncatePolicies(t *testing.T) {
	for _, tt := range []struct {
		mode     string
		want     change.Status
		wantRows int
	}{{"", change.StatusHeld, 1}, {"ignore", change.StatusSkipped, 1}, {"apply", change.StatusSynced, 0}} {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			conn := setupTarget(t, customersDDL)
			spec := defaultSpec()
			spec.Truncate = tt.mode
			a := newApplier(t, conn, Policy{}, spec)
			applyAll(t, conn, a, insertEv(tv("1"), tv("Ann"), null, null, null))
			res := applyAll(t, conn, a, change.Event{Op: change.OpTruncate, Relation: customersRel})
			if res[0].Status != tt.want {
				t.Errorf("status = %s, want %s", res[0].Status, tt.want)
			}
			var n int
			if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM billing.customers").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != tt.wantRows {
				t.Errorf("target rows = %d, want %d", n, tt.wantRows)
			}
		})
	}
}

func TestApplyMissingTargetTable(t *testing.T) {
	conn := setupTarget(t, "")
	_, err := New(context.Background(), conn, []TableSpec{defaultSpec()}, Policy{}, nil)
	if err == nil {
		t.Fatal("New with a missing target table succeeded")
	}
}

func TestApplyQuotedIdentifiers(t *testing.T) {
	conn := setupTarget(t, `CREATE SCHEMA "Odd Schema";
		CREATE TABLE "Odd Schema"."Order.Lines" ("Id" int PRIMARY KEY, "select" text, "my-col" text)`)
	rel := &change.Relation{
		Table:           change.TableName{Schema: "Odd Schema", Name: "Order.Lines"},
		ReplicaIdentity: 'd',
		Columns:         []change.Column{{Name: "Id", Key: true}, {Name: "select"}, {Name: "my-col"}},
	}
	spec := TableSpec{Source: rel.Table, Target: rel.Table}
	a := newApplier(t, conn, Policy{}, spec)
	applyAll(t, conn, a, change.Event{Op: change.OpInsert, Relation: rel, New: change.Tuple{tv("1"), tv("a"), tv("b")}})
	applyAll(t, conn, a, change.Event{Op: change.OpUpdate, Relation: rel, New: change.Tuple{tv("1"), tv("a2"), tv("b")}})

	var sel, my string
	err := conn.QueryRow(context.Background(), `SELECT "select", "my-col" FROM "Odd Schema"."Order.Lines" WHERE "Id" = 1`).Scan(&sel, &my)
	if err != nil {
		t.Fatal(err)
	}
	if sel != "a2" || my != "b" {
		t.Errorf("row = (%q, %q), want (a2, b)", sel, my)
	}
}

func TestApplyCompositeKeyPrefetch(t *testing.T) {
	conn := setupTarget(t, `CREATE TABLE billing.lines (order_id int, line text, qty numeric, PRIMARY KEY (order_id, line))`)
	rel := &change.Relation{
		Table: change.TableName{Schema: "billing", Name: "lines"}, ReplicaIdentity: 'd',
		Columns: []change.Column{{Name: "order_id", Key: true}, {Name: "line", Key: true}, {Name: "qty"}},
	}
	a := newApplier(t, conn, Policy{}, TableSpec{Source: rel.Table, Target: rel.Table})
	applyAll(t, conn, a,
		change.Event{Op: change.OpInsert, Relation: rel, New: change.Tuple{tv("1"), tv(`a,"b"`), tv("1.50")}},
		change.Event{Op: change.OpInsert, Relation: rel, New: change.Tuple{tv("1"), tv("c"), tv("2")}})

	res := applyAll(t, conn, a,
		change.Event{Op: change.OpUpdate, Relation: rel, New: change.Tuple{tv("1"), tv(`a,"b"`), tv("1.50")}},
		change.Event{Op: change.OpUpdate, Relation: rel, New: change.Tuple{tv("1"), tv("c"), tv("3")}})
	if res[0].Diff != nil {
		t.Errorf("unchanged row got diff %s", res[0].Diff)
	}
	if d := diffOf(t, res[1]); len(d) != 1 || d["qty"]["old"] != "2" {
		t.Errorf("diff = %v, want qty 2 -> 3", d)
	}
	if res[0].RowKey != `["1","a,\"b\""]` {
		t.Errorf("row key = %s", res[0].RowKey)
	}
}

func TestCopyTableUpsertsSnapshot(t *testing.T) {
	conn := setupTarget(t, customersDDL+`;
		CREATE SCHEMA crm;
		CREATE TABLE crm.customers (id int PRIMARY KEY, name text, address text, zip text, notes text);
		INSERT INTO crm.customers SELECT g, 'n' || g, 'addr ' || g, '0000' || g, 'secret'
		  FROM generate_series(1, 500) g;
		INSERT INTO billing.customers (id, name) VALUES (1, 'stale')`)
	a := newApplier(t, conn, Policy{}, defaultSpec())
	var reportedCopied int64 = -1
	a.OnCopyProgress(func(table change.TableName, copied, _ int64) {
		if table == customers {
			reportedCopied = copied
		}
	})
	ctx := context.Background()

	srcConn, err := pgx.Connect(ctx, conn.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer srcConn.Close(ctx)
	src, err := srcConn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Rollback(ctx)
	dst, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.CopyTable(ctx, src, dst, customers)
	if err != nil {
		t.Fatalf("CopyTable: %v", err)
	}
	if err := dst.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n != 500 {
		t.Errorf("rows copied = %d, want 500", n)
	}
	if reportedCopied != 500 {
		t.Errorf("copy progress reported %d rows at the end, want 500", reportedCopied)
	}
	row, _ := readCustomer(t, conn, 1)
	if row.Name == nil || *row.Name != "n1" || row.Address == nil || *row.Address != "addr 1" {
		t.Errorf("row 1 = %+v, want the source values over the stale row", row)
	}
}

func TestCopyTableRejectedRowNamesTarget(t *testing.T) {
	conn := setupTarget(t, `CREATE TABLE billing.customers (id int PRIMARY KEY, name text,
			billing_address text, zip int);
		CREATE SCHEMA crm;
		CREATE TABLE crm.customers (id int PRIMARY KEY, name text, address text, zip text, notes text);
		INSERT INTO crm.customers VALUES (1, 'n', 'a', repeat('ab', 50000), NULL)`)
	a := newApplier(t, conn, Policy{}, defaultSpec())

	_, err := copyCustomers(t, conn, a)
	if err == nil {
		t.Fatal("CopyTable succeeded, want the target's rejection of the zip value")
	}
	if !strings.Contains(err.Error(), "the target rejected a row") || strings.Contains(err.Error(), "read source") {
		t.Errorf("error = %.300s, want the target named as the side that failed", err)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("error text is %d bytes, want the 100,000-byte value left out", len(err.Error()))
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
		t.Errorf("error = %.300s, want it to wrap the server's invalid_text_representation", err)
	}
}
