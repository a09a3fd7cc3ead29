package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// approve inserts a held change and approves it through the API, so it is synced.
func (e *env) approve(ev event) uuid.UUID {
	e.t.Helper()
	ev.status = dbgen.ChangeStatusHeld
	id := e.insert(ev)[0]
	must(e.t, e.do(http.MethodPost, "/sync-manual/", "", map[string]any{
		"change_id": id, "action": "approve", "reason": "checked",
	}), http.StatusOK)
	return id
}

func TestSyncManualApproveAndReject(t *testing.T) {
	e := newEnv(t)
	approved := e.insert(event{rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}})[0]
	rejected := e.insert(event{rowKey: "2", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "2", "name": "B"}})[0]

	var res api.SyncManualResult
	must(t, e.do(http.MethodPost, "/sync-manual/", "", map[string]any{
		"change_id": approved, "action": "approve", "reason": "checked",
	}), http.StatusOK).decode(t, &res)
	if len(res.Released) != 1 || res.Released[0] != approved || res.Action != "approve" {
		t.Errorf("result = %+v, want %s released by approve", res, approved)
	}
	if name, _, ok := e.targetRow(1); !ok || name != "A" {
		t.Errorf("target row 1 = %q %v, want A", name, ok)
	}

	must(t, e.do(http.MethodPost, "/sync-manual", "", map[string]any{
		"change_id": rejected, "action": "reject", "reason": "spam",
	}), http.StatusOK)
	if _, _, ok := e.targetRow(2); ok {
		t.Error("target row 2 exists after reject")
	}
	var st api.Status
	must(t, e.get("/status/"+rejected.String(), ""), http.StatusOK).decode(t, &st)
	if st.Status != "rejected" {
		t.Errorf("status = %s, want rejected", st.Status)
	}

	// A decided change is no longer held.
	e.do(http.MethodPost, "/sync-manual/", "", map[string]any{
		"change_id": approved, "action": "reject", "reason": "again",
	}).wantError(t, http.StatusConflict, "not_held")
}

func TestSyncManualThread(t *testing.T) {
	e := newEnv(t)
	thread := uuid.New()
	e.insert(
		event{thread: thread, rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}},
		event{thread: thread, rowKey: "2", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "2", "name": "B"}},
	)
	var res api.SyncManualResult
	must(t, e.do(http.MethodPost, "/sync-manual/", "", map[string]any{
		"thread_id": thread, "action": "approve", "reason": "bulk import is expected",
	}), http.StatusOK).decode(t, &res)
	if len(res.Released) != 2 {
		t.Errorf("released = %v, want both changes of the thread", res.Released)
	}
	e.do(http.MethodPost, "/sync-manual/", "", map[string]any{
		"thread_id": uuid.New(), "action": "approve", "reason": "r",
	}).wantError(t, http.StatusNotFound, "not_found")
}

func TestSyncManualInvalidBodies(t *testing.T) {
	e := newEnv(t)
	id := uuid.NewString()
	tests := []struct {
		name    string
		body    string
		message string
	}{
		{"empty", "", "empty"},
		{"not JSON", "{change_id:", "JSON"},
		{"truncated", `{"change_id": "` + id + `"`, "ends"},
		{"unknown field", `{"change_id": "` + id + `", "action": "approve", "reason": "r", "by": "x"}`, `"by"`},
		{"wrong type", `{"change_id": "` + id + `", "action": 1, "reason": "r"}`, `"action"`},
		{"bad uuid", `{"change_id": "42", "action": "approve", "reason": "r"}`, "UUID"},
		{"no scope", `{"action": "approve", "reason": "r"}`, "change_id"},
		{
			"both scopes", `{"change_id": "` + id + `", "thread_id": "` + id + `", "action": "approve", "reason": "r"}`,
			"exactly one",
		},
		{"bad action", `{"change_id": "` + id + `", "action": "apply", "reason": "r"}`, "approve or reject"},
		{"no reason", `{"change_id": "` + id + `", "action": "approve"}`, "reason"},
		{"trailing data", `{"change_id": "` + id + `", "action": "approve", "reason": "r"} {}`, "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do(http.MethodPost, "/sync-manual/", "", tt.body).wantError(t, http.StatusBadRequest, "invalid_body")
			if !strings.Contains(got.Message, tt.message) {
				t.Errorf("message %q does not mention %q", got.Message, tt.message)
			}
		})
	}
	e.do(http.MethodPost, "/sync-manual/", "", `{"change_id": "`+id+`", "action": "approve", "reason": "r"}`).
		wantError(t, http.StatusNotFound, "not_found")
	big := `{"reason": "` + strings.Repeat("x", 2<<20) + `"}`
	e.do(http.MethodPost, "/sync-manual/", "", big).wantError(t, http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestUndoByChange(t *testing.T) {
	e := newEnv(t)
	id := e.approve(event{rowKey: "1", newData: map[string]any{"id": "1", "name": "A"}})

	var plan api.UndoResult
	must(t, e.do(http.MethodPost, "/undo-request/", "", map[string]any{"change_id": id, "dry_run": true}),
		http.StatusOK).decode(t, &plan)
	if plan.Status != "planned" || len(plan.Changes) != 1 {
		t.Errorf("dry run = %+v, want planned with one change", plan)
	}
	if _, _, ok := e.targetRow(1); !ok {
		t.Fatal("dry run deleted the row")
	}

	var res api.UndoResult
	must(t, e.do(http.MethodPost, "/undo-request", "", map[string]any{"change_id": id, "reason": "test"}),
		http.StatusOK).decode(t, &res)
	if res.Status != "applied" {
		t.Errorf("status = %s, want applied", res.Status)
	}
	if _, _, ok := e.targetRow(1); ok {
		t.Error("undo of the insert left the row")
	}

	var detail api.UndoRequestDetail
	must(t, e.get("/undo-requests/"+res.RequestID.String()+"/", ""), http.StatusOK).decode(t, &detail)
	if detail.Status != "applied" || len(detail.Changes) != 1 || detail.Changes[0].ChangeID != id {
		t.Errorf("undo request = %+v, want applied for %s", detail, id)
	}
	var st api.Status
	must(t, e.get("/status/"+id.String(), ""), http.StatusOK).decode(t, &st)
	if st.Status != "undone" || st.UndoStatus != "applied" || st.UndoneAt == nil || st.SyncedAt == nil {
		t.Errorf("status = %+v, want undone, applied, with synced_at and undone_at", st)
	}

	e.do(http.MethodPost, "/undo-request/", "", map[string]any{"change_id": id, "reason": "again"}).
		wantError(t, http.StatusConflict, "already_undone")
}

func TestUndoConflictAndForce(t *testing.T) {
	e := newEnv(t)
	id := e.approve(event{rowKey: "1", newData: map[string]any{"id": "1", "name": "A", "zip": "12345"}})
	if _, err := e.target.Exec(t.Context(), `UPDATE public.customers SET zip = '99999' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	ev, err := e.st.Queries(e.st.Pool).GetChangeEvent(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	token := ev.UndoToken

	got := e.do(http.MethodPost, "/undo-request/", "", map[string]any{"undo_token": token, "reason": "test"})
	var res api.UndoResult
	got.decode(t, &res)
	if got.status != http.StatusConflict || res.Code != "undo_conflict" || res.Status != "conflict" {
		t.Errorf("response = %d %s, want 409 undo_conflict", got.status, got.body)
	}
	if len(res.Conflicts) != 1 || res.Conflicts[0].Column != "zip" || *res.Conflicts[0].Found != "99999" {
		t.Errorf("conflicts = %+v, want zip found 99999", res.Conflicts)
	}
	var detail api.UndoRequestDetail
	must(t, e.get("/undo-requests/"+res.RequestID.String(), ""), http.StatusOK).decode(t, &detail)
	if detail.Status != "conflict" || string(detail.Changes[0].Conflicts) == "null" {
		t.Errorf("undo request = %+v, want conflict with its conflicts", detail)
	}

	must(t, e.do(http.MethodPost, "/undo-request/", "", map[string]any{"undo_token": token, "reason": "t", "force": true}),
		http.StatusOK).decode(t, &res)
	if res.Status != "applied" || !res.Forced {
		t.Errorf("forced undo = %+v, want applied and forced", res)
	}
}

func TestUndoScopes(t *testing.T) {
	e := newEnv(t)
	thread := uuid.New()
	e.approve(event{thread: thread, rowKey: "1", newData: map[string]any{"id": "1", "name": "A"}})
	e.approve(event{rowKey: "2", newData: map[string]any{"id": "2", "name": "B"}})
	e.approve(event{rowKey: "3", newData: map[string]any{"id": "3", "name": "C"}})

	tests := []struct {
		name string
		body map[string]any
		row  int
	}{
		{"thread", map[string]any{"thread_id": thread}, 1},
		{"row", map[string]any{"table": `"public"."customers"`, "row_key": "2"}, 2},
		{"window", map[string]any{"since": "2000-01-01T00:00:00Z", "tables": []string{`"public".customers`}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.body["reason"] = "test"
			var res api.UndoResult
			must(t, e.do(http.MethodPost, "/undo-request/", "", tt.body), http.StatusOK).decode(t, &res)
			if res.Status != "applied" {
				t.Errorf("status = %s, want applied", res.Status)
			}
			if _, _, ok := e.targetRow(tt.row); ok {
				t.Errorf("row %d still exists", tt.row)
			}
		})
	}
}

func TestUndoInvalidRequests(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"no scope", `{"reason": "r"}`, http.StatusBadRequest, "invalid_body"},
		{
			"two scopes", `{"change_id": "` + uuid.NewString() + `", "thread_id": "` + uuid.NewString() + `", "reason": "r"}`,
			http.StatusBadRequest, "invalid_body",
		},
		{"no reason", `{"change_id": "` + uuid.NewString() + `"}`, http.StatusBadRequest, "invalid_body"},
		{"bad time", `{"since": "yesterday", "reason": "r"}`, http.StatusBadRequest, "invalid_body"},
		{"unknown change", `{"change_id": "` + uuid.NewString() + `", "reason": "r"}`, http.StatusNotFound, "not_found"},
		{"unknown token", `{"undo_token": "` + uuid.NewString() + `", "reason": "r"}`, http.StatusNotFound, "not_found"},
		{"nil change id", `{"change_id": "` + uuid.Nil.String() + `", "reason": "r"}`, http.StatusNotFound, "not_found"},
		{"nil thread id", `{"thread_id": "` + uuid.Nil.String() + `", "reason": "r"}`, http.StatusNotFound, "not_found"},
		{
			"invalid quoted table", `{"table": "\"public.customers", "row_key": "1", "reason": "r"}`,
			http.StatusBadRequest, "invalid_body",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.do(http.MethodPost, "/undo-request/", "", tt.body).wantError(t, tt.status, tt.code)
		})
	}
}

func TestDiffOfRow(t *testing.T) {
	e := newEnv(t)
	e.approve(event{rowKey: "1", newData: map[string]any{"id": "1", "name": "A", "zip": "12345"}})
	update := e.approve(event{
		rowKey: "1", op: dbgen.ChangeTypeUpdate,
		oldData: map[string]any{"id": "1", "name": "A", "zip": "12345"},
		newData: map[string]any{"id": "1", "name": "A", "zip": "54321"},
	})

	for _, path := range []string{
		"/diff/1", "/diff/1/", "/diff/1?table=" + url.QueryEscape(customers),
		"/diff/1?table=" + url.QueryEscape(`"public"."customers"`), "/diff/1?table=customers",
	} {
		var d api.RowDiff
		must(t, e.get(path, ""), http.StatusOK).decode(t, &d)
		if d.TargetTable != customers || len(d.Changes) != 2 {
			t.Fatalf("%s: diff = %+v, want two changes of %s", path, d, customers)
		}
		last := d.Changes[1]
		if last.ChangeID != update || len(last.Columns) != 1 || last.Columns[0].Column != "zip" {
			t.Errorf("%s: last change = %+v, want only zip of %s", path, last, update)
		}
		if string(last.Columns[0].Old) != `"12345"` || string(last.Columns[0].New) != `"54321"` {
			t.Errorf("%s: zip old %s new %s, want 12345 and 54321", path, last.Columns[0].Old, last.Columns[0].New)
		}
		if d.Current["zip"] == nil || *d.Current["zip"] != "54321" || *d.Current["id"] != "1" {
			t.Errorf("%s: current = %v, want id 1 and zip 54321", path, d.Current)
		}
	}

	e.get("/diff/404", "").wantError(t, http.StatusNotFound, "not_found")
	e.get("/diff/1?table=public.orders", "").wantError(t, http.StatusNotFound, "not_found")
	e.get("/diff/1?tabel=x", "").wantError(t, http.StatusBadRequest, "invalid_parameter")
	e.get("/diff/1?table="+url.QueryEscape(`"public".`), "").wantError(t, http.StatusBadRequest, "invalid_parameter")
}

func TestDiffOfDeletedRow(t *testing.T) {
	e := newEnv(t)
	e.approve(event{rowKey: "5", newData: map[string]any{"id": "5", "name": "E"}})
	e.approve(event{rowKey: "5", op: dbgen.ChangeTypeDelete, oldData: map[string]any{"id": "5", "name": "E"}})

	var d api.RowDiff
	must(t, e.get("/diff/5", ""), http.StatusOK).decode(t, &d)
	if len(d.Changes) != 2 || d.Changes[1].Op != "delete" {
		t.Errorf("changes = %+v, want an insert and a delete", d.Changes)
	}
	if d.Current != nil {
		t.Errorf("current = %v, want null for a deleted row", d.Current)
	}
}

func TestDiffAmbiguousRowKey(t *testing.T) {
	e := newEnv(t)
	e.approve(event{rowKey: "1", newData: map[string]any{"id": "1", "name": "A"}})
	if _, err := e.st.Pool.Exec(t.Context(), `INSERT INTO sync_log
		(change_event_id, source_table, target_table, source_id, diff, performed_by, op)
		SELECT id, 'public.orders', 'public.orders', '1', '{}', 'test', 'insert' FROM change_events`); err != nil {
		t.Fatal(err)
	}
	got := e.get("/diff/1", "").wantError(t, http.StatusBadRequest, "invalid_parameter")
	if !strings.Contains(got.Message, "?table=") {
		t.Errorf("message %q does not say to add the table", got.Message)
	}
	must(t, e.get("/diff/1?table=public.customers", ""), http.StatusOK)
}

func TestPostRejectsNonJSONBody(t *testing.T) {
	e := newEnv(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.http.URL+"/sync-manual/",
		strings.NewReader("change_id=1"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("status = %d, want 415", res.StatusCode)
	}
}
