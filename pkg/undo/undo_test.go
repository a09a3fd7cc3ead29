package undo_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/undo"
)

const customersDDL = `CREATE TABLE customers (id int PRIMARY KEY, address text, zip text, note text)`

func customers() apply.TableSpec {
	return apply.TableSpec{Source: change.TableName{Schema: "public", Name: "customers"}}
}

// request returns a request for one change with a requestor and a reason.
func request(id string) undo.Request {
	return undo.Request{ChangeID: uuid.MustParse(id), Requestor: "alice", Reason: "customer asked"}
}

func (e *env) execute(req undo.Request) (undo.Result, error) {
	e.t.Helper()
	return e.ex.Execute(context.Background(), req)
}

func (e *env) mustExecute(req undo.Request) undo.Result {
	e.t.Helper()
	res, err := e.execute(req)
	if err != nil {
		e.t.Fatalf("Execute(%+v): %v", req, err)
	}
	return res
}

func TestUndoUpdateRestoresChangedColumns(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (42, 'Old Street 1', '12345', 'vip')`)
	e.exec(`UPDATE customers SET address = 'New Road 9', zip = '54321' WHERE id = 42`)
	id := e.changeID("public.customers", "42", change.OpUpdate)
	e.execOn(e.dst, `UPDATE customers SET note = 'edited on the target' WHERE id = 42`)

	res := e.mustExecute(request(id))

	if res.Status != undo.StatusApplied {
		t.Errorf("status = %q, want applied", res.Status)
	}
	if len(res.Changes) != 1 || res.Changes[0].Action != undo.ActionUpdate {
		t.Fatalf("changes = %+v, want one update", res.Changes)
	}
	e.wantRows(`SELECT * FROM customers`, "42 | Old Street 1 | 12345 | edited on the target")
	e.wantRows(`SELECT status, synced FROM changesync.change_events WHERE id = '`+id+`'`, "undone | t")
	e.wantRows(`SELECT undo_status FROM changesync.sync_log WHERE change_event_id = '`+id+`'
		AND undo_request IS NULL`, "undone")
	e.wantRows(`SELECT request_id = '`+res.RequestID.String()+`', requestor, reason, status, forced,
		undone_at IS NOT NULL, conflicts IS NULL FROM changesync.undo_requests`,
		"t | alice | customer asked | applied | f | t | t")
	e.wantRows(`SELECT l.op, l.performed_by, l.diff->'address'->>'old', l.diff->'address'->>'new',
		l.diff ? 'note', l.target_key::text
		FROM changesync.sync_log l JOIN changesync.undo_requests r ON r.id = l.undo_request`,
		`update | undo:alice | New Road 9 | Old Street 1 | f | ["42"]`)
	e.wantRows(`SELECT payload->'undo'->>'status', payload->>'table', payload->>'row_key',
		payload->'undo'->>'request_id' = '`+res.RequestID.String()+`'
		FROM changesync.outbox WHERE event_type = 'undo'`, "applied | public.customers | 42 | t")
}

func TestUndoInsertDeletesRow(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL), (2, 'b', '22222', NULL)`)
	id := e.changeID("public.customers", "1", change.OpInsert)

	res := e.mustExecute(request(id))

	if got := res.Changes[0].Action; got != undo.ActionDelete {
		t.Errorf("action = %q, want delete", got)
	}
	e.wantRows(`SELECT id FROM customers ORDER BY id`, "2")
	e.wantRows(`SELECT op FROM changesync.sync_log WHERE undo_request IS NOT NULL`, "delete")
}

func TestUndoDeleteReinsertsRow(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (7, 'Elm 3', '33333', NULL)`)
	e.exec(`DELETE FROM customers WHERE id = 7`)
	id := e.changeID("public.customers", "7", change.OpDelete)

	res := e.mustExecute(request(id))

	if got := res.Changes[0].Action; got != undo.ActionInsert {
		t.Errorf("action = %q, want insert", got)
	}
	e.wantRows(`SELECT * FROM customers`, "7 | Elm 3 | 33333 | ∅")
}

func TestUndoKeyChangeMovesRowBack(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET id = 5, zip = '55555' WHERE id = 1`)
	id := e.changeID("public.customers", "5", change.OpUpdate)

	res := e.mustExecute(request(id))

	if got := res.Changes[0].Action; got != undo.ActionMove {
		t.Errorf("action = %q, want move", got)
	}
	e.wantRows(`SELECT * FROM customers`, "1 | a | 11111 | ∅")
	e.wantRows(`SELECT target_key::text FROM changesync.sync_log WHERE undo_request IS NOT NULL`, `["1"]`)
}

func TestUndoMoveBlockedByOldKey(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET id = 5 WHERE id = 1`)
	e.execOn(e.dst, `INSERT INTO customers VALUES (1, 'squatter', NULL, NULL)`)
	req := request(e.changeID("public.customers", "5", change.OpUpdate))
	req.Force = true

	res, err := e.execute(req)

	if !undo.IsConflict(err) {
		t.Fatalf("Execute error = %v, want a conflict even with force", err)
	}
	if len(res.Conflicts) != 1 || !res.Conflicts[0].Blocking || res.Conflicts[0].Reason != undo.ReasonKeyTaken {
		t.Errorf("conflicts = %+v, want one blocking %q", res.Conflicts, undo.ReasonKeyTaken)
	}
	e.wantRows(`SELECT id, address FROM customers ORDER BY id`, "1 | squatter", "5 | a")
}

func TestUndoConflictWithLaterSyncedChange(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET address = 'b' WHERE id = 1`)
	first := e.changeID("public.customers", "1", change.OpUpdate)
	e.exec(`UPDATE customers SET address = 'c', zip = '22222' WHERE id = 1`)

	res, err := e.execute(request(first))

	if !undo.IsConflict(err) {
		t.Fatalf("Execute error = %v, want a conflict", err)
	}
	if res.Status != undo.StatusConflict {
		t.Errorf("status = %q, want conflict", res.Status)
	}
	want := undo.Conflict{
		ChangeID: uuid.MustParse(first), Table: "public.customers", RowKey: "1", Column: "address",
		Expected: ptr("b"), Found: ptr("c"), Reason: undo.ReasonChanged,
	}
	if len(res.Conflicts) != 1 || !sameConflict(res.Conflicts[0], want) {
		t.Errorf("conflicts = %s, want only %s", show(res.Conflicts), show(want))
	}
	e.wantRows(`SELECT address, zip FROM customers`, "c | 22222")
	e.wantRows(`SELECT status FROM changesync.change_events WHERE id = '`+first+`'`, "synced")
	e.wantRows(`SELECT status, undone_at IS NULL, conflicts->0->>'column', conflicts->0->>'found'
		FROM changesync.undo_requests`, "conflict | t | address | c")
	e.wantRows(`SELECT payload->'undo'->>'status' FROM changesync.outbox WHERE event_type = 'undo'`, "conflict")
}

func TestUndoNewestFirstInOneRequest(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET address = 'b' WHERE id = 1`)
	e.exec(`UPDATE customers SET address = 'c' WHERE id = 1`)
	e.exec(`DELETE FROM customers WHERE id = 1`)

	res := e.mustExecute(undo.Request{Table: "customers", RowKey: "1", Requestor: "alice", Reason: "all of it"})

	var actions []string
	for _, c := range res.Changes {
		actions = append(actions, string(c.Action))
	}
	if got := strings.Join(actions, ","); got != "insert,update,update,delete" {
		t.Errorf("actions = %s, want insert,update,update,delete", got)
	}
	e.wantRows(`SELECT count(*) FROM customers`, "0")
	e.wantRows(`SELECT count(*) FROM changesync.undo_requests WHERE status = 'applied'`, "4")
}

func TestUndoConflictWithDirectWrite(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET address = 'b', zip = '22222' WHERE id = 1`)
	id := e.changeID("public.customers", "1", change.OpUpdate)
	e.execOn(e.dst, `UPDATE customers SET zip = NULL WHERE id = 1`)

	res, err := e.execute(request(id))

	if !undo.IsConflict(err) {
		t.Fatalf("Execute error = %v, want a conflict", err)
	}
	want := undo.Conflict{
		ChangeID: uuid.MustParse(id), Table: "public.customers", RowKey: "1", Column: "zip",
		Expected: ptr("22222"), Found: nil, Reason: undo.ReasonChanged,
	}
	if len(res.Conflicts) != 1 || !sameConflict(res.Conflicts[0], want) {
		t.Errorf("conflicts = %s, want only %s", show(res.Conflicts), show(want))
	}
	e.wantRows(`SELECT address, zip FROM customers`, "b | ∅")
}

func TestUndoForceOverwritesConflicts(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET address = 'b', zip = '22222' WHERE id = 1`)
	id := e.changeID("public.customers", "1", change.OpUpdate)
	e.execOn(e.dst, `UPDATE customers SET zip = '99999' WHERE id = 1`)
	req := request(id)
	req.Force = true

	res := e.mustExecute(req)

	if !res.Forced || len(res.Conflicts) != 1 {
		t.Errorf("forced = %v with conflicts %s, want forced over one conflict", res.Forced, show(res.Conflicts))
	}
	e.wantRows(`SELECT address, zip FROM customers`, "a | 11111")
	e.wantRows(`SELECT status, forced, conflicts->0->>'found' FROM changesync.undo_requests`, "applied | t | 99999")
	e.wantRows(`SELECT payload->'undo'->>'forced' FROM changesync.outbox WHERE event_type = 'undo'`, "true")
}

func TestUndoDryRunWritesNothing(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET address = 'b' WHERE id = 1`)
	id := e.changeID("public.customers", "1", change.OpUpdate)
	e.execOn(e.dst, `UPDATE customers SET zip = '0' WHERE id = 1`)
	req := request(id)
	req.DryRun, req.Reason = true, ""

	res := e.mustExecute(req)

	if res.Status != undo.StatusPlanned {
		t.Errorf("status = %q, want planned", res.Status)
	}
	if len(res.Changes) != 1 {
		t.Fatalf("changes = %+v, want one", res.Changes)
	}
	d := res.Changes[0].Diff["address"]
	if d.Old == nil || *d.Old != "b" || d.New == nil || *d.New != "a" {
		t.Errorf("planned address = %s, want b → a", show(d))
	}
	if len(res.Conflicts) != 0 {
		t.Errorf("conflicts = %s, want none: zip is not a column of the change", show(res.Conflicts))
	}
	e.wantRows(`SELECT address FROM customers`, "b")
	e.wantRows(`SELECT count(*) FROM changesync.undo_requests`, "0")
	e.wantRows(`SELECT count(*) FROM changesync.outbox WHERE event_type = 'undo'`, "0")
	e.wantRows(`SELECT status FROM changesync.change_events WHERE id = '`+id+`'`, "synced")
}

func TestUndoTwiceIsRejected(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	id := e.changeID("public.customers", "1", change.OpInsert)
	e.mustExecute(request(id))

	_, err := e.execute(request(id))

	if !errors.Is(err, undo.ErrAlreadyUndone) {
		t.Fatalf("second Execute error = %v, want ErrAlreadyUndone", err)
	}
	if !strings.Contains(err.Error(), id) {
		t.Errorf("error %q does not name change %s", err, id)
	}
	e.wantRows(`SELECT count(*) FROM changesync.undo_requests`, "1")
}

func TestUndoRefusesChangesNotSynced(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'reject', NULL, NULL)`)
	id := e.changeID("public.customers", "1", change.OpInsert)

	_, err := e.execute(request(id))

	if !errors.Is(err, undo.ErrNotUndoable) {
		t.Fatalf("Execute error = %v, want ErrNotUndoable", err)
	}
	for _, want := range []string{id, "rejected", "value is reject"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestUndoUnknownIDsAreNamed(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	unknown := uuid.New()
	tests := []struct {
		name string
		req  undo.Request
		want string
	}{
		{"change", undo.Request{ChangeID: unknown}, "change " + unknown.String()},
		{"token", undo.Request{UndoToken: unknown}, "undo token " + unknown.String()},
		{"thread", undo.Request{ThreadID: unknown}, "thread " + unknown.String()},
		{"row", undo.Request{Table: "customers", RowKey: "404"}, "row 404 of table public.customers"},
		{"window", undo.Request{Since: time.Now().Add(time.Hour)}, "changes synced from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Requestor, tt.req.Reason = "alice", "test"
			_, err := e.execute(tt.req)
			if !undo.IsNotFound(err) {
				t.Fatalf("Execute error = %v, want ErrNotFound", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestUndoTokenScope(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET zip = '22222' WHERE id = 1`)
	token := e.one(`SELECT undo_token FROM changesync.change_events
		WHERE table_name = 'public.customers' AND change_type = 'update'`)

	res := e.mustExecute(undo.Request{UndoToken: uuid.MustParse(token), Requestor: "alice", Reason: "r"})

	if len(res.Changes) != 1 {
		t.Errorf("changes = %+v, want one", res.Changes)
	}
	e.wantRows(`SELECT zip FROM customers`, "11111")
}

func TestUndoThreadScope(t *testing.T) {
	e := newEnv(t, customersDDL+`; CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric)`, "",
		customers(), apply.TableSpec{Source: change.TableName{Schema: "public", Name: "orders"}})
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL), (2, 'b', '22222', NULL)`)
	e.exec(`BEGIN;
		UPDATE customers SET address = 'moved' WHERE id = 1;
		INSERT INTO orders VALUES (10, 1, 9.90);
		DELETE FROM customers WHERE id = 2;
		INSERT INTO customers VALUES (3, 'reject', NULL, NULL);
		COMMIT`)
	thread := e.one(`SELECT thread_id FROM changesync.change_events WHERE table_name = 'public.orders'`)

	res := e.mustExecute(undo.Request{ThreadID: uuid.MustParse(thread), Requestor: "alice", Reason: "bad deploy"})

	if len(res.Changes) != 3 {
		t.Errorf("undid %d changes, want 3: %+v", len(res.Changes), res.Changes)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Status != "rejected" {
		t.Errorf("skipped = %+v, want the rejected insert", res.Skipped)
	}
	e.wantRows(`SELECT * FROM customers ORDER BY id`, "1 | a | 11111 | ∅", "2 | b | 22222 | ∅")
	e.wantRows(`SELECT count(*) FROM orders`, "0")
	e.wantRows(`SELECT count(DISTINCT request_id), count(*) FROM changesync.undo_requests`, "1 | 3")
	e.wantRows(`SELECT payload->'undo'->>'changes', payload->>'thread_id' = '`+thread+`'
		FROM changesync.outbox WHERE event_type = 'undo'`, "3 | t")

	_, err := e.execute(undo.Request{ThreadID: uuid.MustParse(thread), Requestor: "alice", Reason: "again"})
	if !errors.Is(err, undo.ErrAlreadyUndone) {
		t.Errorf("second thread undo error = %v, want ErrAlreadyUndone", err)
	}
}

func TestUndoRowScopeSince(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL), (2, 'x', NULL, NULL)`)
	since := time.Now()
	e.exec(`UPDATE customers SET address = 'b' WHERE id = 1`)
	e.exec(`UPDATE customers SET address = 'c' WHERE id IN (1, 2)`)

	res := e.mustExecute(undo.Request{
		Table: "public.customers", RowKey: "1", Since: since, Requestor: "alice", Reason: "r",
	})

	if len(res.Changes) != 2 {
		t.Errorf("undid %d changes, want the 2 updates since %s", len(res.Changes), since)
	}
	e.wantRows(`SELECT id, address FROM customers ORDER BY id`, "1 | a", "2 | c")

	res = e.mustExecute(undo.Request{Table: "customers", RowKey: "1", Requestor: "alice", Reason: "r"})
	if len(res.Changes) != 1 || res.Changes[0].Action != undo.ActionDelete || len(res.Skipped) != 2 {
		t.Errorf("second row undo = %+v, want the insert undone and the 2 updates skipped", res)
	}
	e.wantRows(`SELECT id FROM customers`, "2")
}

func TestUndoTimeWindowAcrossTables(t *testing.T) {
	ddl := customersDDL + `; CREATE TABLE orders (id int PRIMARY KEY, total numeric);
		CREATE TABLE notes (id int PRIMARY KEY, body text)`
	e := newEnv(t, ddl, "", customers(),
		apply.TableSpec{Source: change.TableName{Schema: "public", Name: "orders"}},
		apply.TableSpec{Source: change.TableName{Schema: "public", Name: "notes"}})
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL);
		INSERT INTO orders VALUES (1, 10); INSERT INTO notes VALUES (1, 'n')`)
	since := time.Now()
	e.exec(`UPDATE customers SET address = 'b' WHERE id = 1`)
	e.exec(`BEGIN; INSERT INTO orders VALUES (2, 20); UPDATE orders SET total = 11 WHERE id = 1;
		UPDATE notes SET body = 'm'; COMMIT`)
	e.exec(`INSERT INTO customers VALUES (2, 'new', NULL, NULL)`)
	until := time.Now()
	e.exec(`UPDATE customers SET zip = '33333' WHERE id = 1`)

	res := e.mustExecute(undo.Request{
		Since: since, Until: until, Tables: []string{"customers", "public.orders"},
		Requestor: "alice", Reason: "window",
	})

	if len(res.Changes) != 4 {
		t.Errorf("undid %d changes, want 4", len(res.Changes))
	}
	for i := 1; i < len(res.Changes); i++ {
		if res.Changes[i-1].ChangeID == res.Changes[i].ChangeID {
			t.Errorf("change %s listed twice", res.Changes[i].ChangeID)
		}
	}
	e.wantRows(`SELECT * FROM customers ORDER BY id`, "1 | a | 33333 | ∅")
	e.wantRows(`SELECT * FROM orders ORDER BY id`, "1 | 10")
	e.wantRows(`SELECT * FROM notes`, "1 | m")
}

func TestUndoDroppedTargetColumn(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', 'x')`)
	e.exec(`UPDATE customers SET address = 'b', note = 'y' WHERE id = 1`)
	id := e.changeID("public.customers", "1", change.OpUpdate)
	e.execOn(e.dst, `ALTER TABLE customers DROP COLUMN note`)

	res, err := e.execute(request(id))

	if !undo.IsConflict(err) {
		t.Fatalf("Execute error = %v, want a conflict", err)
	}
	if len(res.Conflicts) != 1 || res.Conflicts[0].Column != "note" ||
		res.Conflicts[0].Reason != undo.ReasonColumnMissing {
		t.Errorf("conflicts = %s, want note with %q", show(res.Conflicts), undo.ReasonColumnMissing)
	}

	req := request(id)
	req.Force = true
	e.mustExecute(req)
	e.wantRows(`SELECT * FROM customers`, "1 | a | 11111")
}

func TestUndoInvalidRequests(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	id := uuid.New()
	now := time.Now()
	tests := []struct {
		name string
		req  undo.Request
	}{
		{"no scope", undo.Request{}},
		{"two scopes", undo.Request{ChangeID: id, ThreadID: id}},
		{"row without key", undo.Request{Table: "customers"}},
		{"row with until", undo.Request{Table: "customers", RowKey: "1", Until: now}},
		{"window without since", undo.Request{Until: now}},
		{"window ends before start", undo.Request{Since: now, Until: now.Add(-time.Hour)}},
		{"no reason", undo.Request{ChangeID: id, Requestor: "alice", Reason: " "}},
		{"no requestor", undo.Request{ChangeID: id, Reason: "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Requestor == "" && tt.name != "no requestor" {
				tt.req.Requestor, tt.req.Reason = "alice", "r"
			}
			_, err := e.execute(tt.req)
			if !errors.Is(err, undo.ErrInvalidRequest) {
				t.Errorf("Execute error = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func sameConflict(a, b undo.Conflict) bool {
	return show(a) == show(b)
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestUndoFindsRowByStoredKeyColumns(t *testing.T) {
	// The target has a primary key of its own; the applier finds rows by the unique id.
	e := newEnv(t, customersDDL, `CREATE TABLE customers (tid int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		id int UNIQUE, address text, zip text, note text)`, customers())
	e.execOn(e.dst, `INSERT INTO customers (tid, id, address) VALUES (7, 1000, 'a bystander')`)
	e.exec(`INSERT INTO customers VALUES (7, 'Old Street 1', '12345', 'vip')`)
	e.exec(`UPDATE customers SET address = 'New Road 9' WHERE id = 7`)
	id := e.changeID("public.customers", "7", change.OpUpdate)
	e.wantRows(`SELECT target_key_columns::text FROM changesync.sync_log WHERE change_event_id = '`+id+`'`, "{id}")

	if res := e.mustExecute(request(id)); res.Status != undo.StatusApplied {
		t.Fatalf("status = %q, want applied", res.Status)
	}
	e.wantRows(`SELECT tid, id, address FROM customers ORDER BY tid`,
		"1 | 7 | Old Street 1", "7 | 1000 | a bystander")
	e.wantRows(`SELECT target_key_columns::text FROM changesync.sync_log WHERE undo_request IS NOT NULL`, "{id}")
}
