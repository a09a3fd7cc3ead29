package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// funcTransformer transforms each listed column with a Go function of the event and the
// actor, as the CEL transforms of the validate package do.
type funcTransformer map[string]func(ev *change.Event, actor string) (change.Value, error)

func (f funcTransformer) Columns() []string {
	var cols []string
	for col := range f {
		cols = append(cols, col)
	}
	return cols
}

func (f funcTransformer) Transform(_ context.Context, ev *change.Event, actor string,
) (map[string]change.Value, error) {
	out := map[string]change.Value{}
	for col, fn := range f {
		i := ev.Relation.ColumnIndex(col)
		if !ev.New[i].Known() {
			continue
		}
		v, err := fn(ev, actor)
		if err != nil {
			return nil, fmt.Errorf("transform of column %q failed: %w", col, err)
		}
		out[col] = v
	}
	return out, nil
}

// upperName upper-cases the name and writes the zip as "<zip>-<actor>".
var upperName = funcTransformer{
	"name": func(ev *change.Event, _ string) (change.Value, error) {
		return tv(strings.ToUpper(ev.New[1].Text)), nil
	},
	"zip": func(ev *change.Event, actor string) (change.Value, error) {
		if ev.New[3].Text == "boom" {
			return change.Value{}, errors.New("no such key: boom")
		}
		return tv(ev.New[3].Text + "-" + actor), nil
	},
}

func transformSpec(t Transformer) TableSpec {
	spec := defaultSpec()
	spec.Transform = t
	return spec
}

func TestApplyTransformInsertAndUpdate(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, transformSpec(upperName))
	ctx := WithTxActor(context.Background(), "alice")
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := a.Begin(tx)

	ins := insertEv(tv("1"), tv("ada"), tv("1 Main St"), tv("12345"), tv("n"))
	res, err := b.Apply(ctx, &ins)
	if err != nil || res.Status != change.StatusSynced {
		t.Fatalf("insert: %+v, %v", res, err)
	}
	if got := diffOf(t, res)["name"]["new"]; got != "ADA" {
		t.Errorf("insert diff name.new = %v, want ADA", got)
	}
	if ins.New[1].Text != "ada" {
		t.Errorf("the event's new name became %q, want the source value ada", ins.New[1].Text)
	}

	upd := updateEv(nil, change.Tuple{tv("1"), tv("grace"), tv("1 Main St"), tv("54321"), tv("n")})
	res, err = b.Apply(ctx, &upd)
	if err != nil || res.Status != change.StatusSynced {
		t.Fatalf("update: %+v, %v", res, err)
	}
	d := diffOf(t, res)
	if d["name"]["old"] != "ADA" || d["name"]["new"] != "GRACE" {
		t.Errorf("update diff name = %v, want ADA -> GRACE", d["name"])
	}
	if d["zip"]["old"] != "12345-alice" || d["zip"]["new"] != "54321-alice" {
		t.Errorf("update diff zip = %v, want 12345-alice -> 54321-alice", d["zip"])
	}
	if _, ok := d["billing_address"]; ok {
		t.Errorf("update diff %v writes the unchanged address", d)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	row, _ := readCustomer(t, conn, 1)
	if row.Name == nil || *row.Name != "GRACE" || row.Zip == nil || *row.Zip != "54321-alice" {
		t.Errorf("target row = %+v, want name GRACE and zip 54321-alice", row)
	}
}

func TestApplyTransformUnchangedToastNotWritten(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, transformSpec(upperName))
	applyAll(t, conn, a, insertEv(tv("1"), tv("ada"), tv("a"), tv("1"), null))

	res := applyAll(t, conn, a, updateEv(nil, change.Tuple{tv("1"), unchanged, tv("b"), tv("1"), null}))
	if d := diffOf(t, res[0]); d["name"] != nil || d["billing_address"]["new"] != "b" {
		t.Errorf("diff = %v, want only billing_address written", d)
	}
	row, _ := readCustomer(t, conn, 1)
	if row.Name == nil || *row.Name != "ADA" {
		t.Errorf("name = %v, want ADA kept", row.Name)
	}

	// Under REPLICA IDENTITY FULL the old tuple has the source value, which an UPDATE of
	// a missing row must not insert in place of the transformed one.
	full := change.Tuple{tv("2"), tv("bob"), tv("a"), tv("2"), null}
	res = applyAll(t, conn, a, updateEv(full, change.Tuple{tv("2"), unchanged, tv("a"), tv("2"), null}))
	if res[0].Status != change.StatusFailed || !strings.Contains(res[0].Reason, `column "name" is an unchanged TOAST value`) {
		t.Errorf("update of a missing row = %+v, want failed for the unchanged transformed column", res[0])
	}
}

func TestApplyTransformErrorFailsChange(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	a := newApplier(t, conn, Policy{}, transformSpec(upperName))
	res := applyAll(t, conn, a, insertEv(tv("7"), tv("ada"), tv("a"), tv("boom"), null),
		insertEv(tv("8"), tv("bob"), tv("b"), tv("8"), null))

	if res[0].Status != change.StatusFailed {
		t.Errorf("status = %s, want failed", res[0].Status)
	}
	if want := `transform of column "zip" failed: no such key: boom`; res[0].Reason != want {
		t.Errorf("reason = %q, want %q", res[0].Reason, want)
	}
	if res[0].RowKey != "7" || res[0].Target.Name != "customers" {
		t.Errorf("result = %+v, want row key 7 of billing.customers", res[0])
	}
	if _, found := readCustomer(t, conn, 7); found {
		t.Error("the failed change wrote its row")
	}
	if _, found := readCustomer(t, conn, 8); !found {
		t.Error("the next change of the batch was not applied")
	}
}

func TestApplyTransformDeleteUntouched(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	calls := 0
	counting := funcTransformer{"name": func(*change.Event, string) (change.Value, error) {
		calls++
		return tv("X"), nil
	}}
	a := newApplier(t, conn, Policy{}, transformSpec(counting))
	applyAll(t, conn, a, insertEv(tv("1"), tv("ada"), tv("a"), tv("1"), null))
	res := applyAll(t, conn, a, change.Event{
		Op: change.OpDelete, Relation: customersRel, Old: change.Tuple{tv("1"), null, null, null, null},
	})
	if calls != 1 {
		t.Errorf("transform ran %d times, want once (for the INSERT only)", calls)
	}
	if res[0].Status != change.StatusSynced || diffOf(t, res[0])["name"]["old"] != "X" {
		t.Errorf("delete = %+v, want synced with the transformed old name", res[0])
	}
}

func TestApplyTransformOfKeyColumnFails(t *testing.T) {
	conn := setupTarget(t, customersDDL)
	keyTransform := funcTransformer{"id": func(*change.Event, string) (change.Value, error) { return tv("9"), nil }}
	a := newApplier(t, conn, Policy{}, transformSpec(keyTransform))
	res := applyAll(t, conn, a, insertEv(tv("1"), tv("ada"), tv("a"), tv("1"), null))
	if res[0].Status != change.StatusFailed || !strings.Contains(res[0].Reason, `key column "id" has a transform`) {
		t.Errorf("result = %+v, want failed naming the transformed key column", res[0])
	}
}

func TestCopyTableAppliesTransforms(t *testing.T) {
	conn := setupTarget(t, customersDDL+`;
		CREATE SCHEMA crm;
		CREATE TABLE crm.customers (id int PRIMARY KEY, name text, address text, zip text, notes text);
		INSERT INTO crm.customers SELECT g, 'n' || g, 'addr ' || g, '0000' || g, 'secret'
		  FROM generate_series(1, 300) g;
		INSERT INTO crm.customers VALUES (0, E'tab\tnew\nline\\back', NULL, NULL, NULL)`)
	quoted := funcTransformer{"name": func(ev *change.Event, actor string) (change.Value, error) {
		return tv("<" + ev.New[1].Text + ">" + actor), nil
	}}
	a := newApplier(t, conn, Policy{}, transformSpec(quoted))
	ctx := context.Background()

	n, err := copyCustomers(t, conn, a)
	if err != nil {
		t.Fatalf("CopyTable: %v", err)
	}
	if n != 301 {
		t.Errorf("rows copied = %d, want 301", n)
	}
	var name, address *string
	if err := conn.QueryRow(ctx, "SELECT name, billing_address FROM billing.customers WHERE id = 0").
		Scan(&name, &address); err != nil {
		t.Fatal(err)
	}
	if want := "<tab\tnew\nline\\back>"; name == nil || *name != want {
		t.Errorf("name of row 0 = %q, want %q", deref(name), want)
	}
	if address != nil {
		t.Errorf("address of row 0 = %q, want NULL", *address)
	}
	row, _ := readCustomer(t, conn, 300)
	if row.Name == nil || *row.Name != "<n300>" || row.Zip == nil || *row.Zip != "0000300" {
		t.Errorf("row 300 = %+v, want name <n300> and zip 0000300", row)
	}
}

func TestCopyTableTransformErrorStopsCopy(t *testing.T) {
	conn := setupTarget(t, customersDDL+`;
		CREATE SCHEMA crm;
		CREATE TABLE crm.customers (id int PRIMARY KEY, name text, address text, zip text, notes text);
		INSERT INTO crm.customers VALUES (1, 'a', 'x', '1', NULL), (2, 'b', 'y', 'boom', NULL)`)
	a := newApplier(t, conn, Policy{}, transformSpec(upperName))
	_, err := copyCustomers(t, conn, a)
	if err == nil {
		t.Fatal("CopyTable succeeded with a failing transform")
	}
	if want := `row 2: transform of column "zip" failed: no such key: boom`; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
}

// copyCustomers copies crm.customers into billing.customers of the same database and
// commits the copy when it succeeds.
func copyCustomers(t *testing.T, conn *pgx.Conn, a *Applier) (int64, error) {
	t.Helper()
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
	defer dst.Rollback(ctx)
	n, err := a.CopyTable(ctx, src, dst, customers)
	if err != nil {
		return 0, err
	}
	return n, dst.Commit(ctx)
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
