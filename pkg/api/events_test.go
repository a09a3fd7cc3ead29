package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

func TestListChangeEventsFilters(t *testing.T) {
	e := newEnv(t)
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	thread := uuid.New()
	ids := e.insert(
		event{rowKey: "1", status: dbgen.ChangeStatusSynced, actor: "alice", detectedAt: base, thread: thread},
		event{rowKey: "2", status: dbgen.ChangeStatusHeld, op: dbgen.ChangeTypeUpdate, detectedAt: base.Add(time.Minute)},
		event{
			rowKey: "1", status: dbgen.ChangeStatusRejected, op: dbgen.ChangeTypeDelete, actor: "bob",
			detectedAt: base.Add(2 * time.Minute),
		},
		event{rowKey: "1", table: "public.orders", detectedAt: base.Add(3 * time.Minute)},
	)

	tests := []struct {
		name  string
		query string
		want  []uuid.UUID // newest first
	}{
		{"all", "", []uuid.UUID{ids[3], ids[2], ids[1], ids[0]}},
		{"table", "table=public.customers", []uuid.UUID{ids[2], ids[1], ids[0]}},
		{"table and row key", "table=public.customers&row_key=1", []uuid.UUID{ids[2], ids[0]}},
		{"status", "status=held", []uuid.UUID{ids[1]}},
		{"change type", "change_type=delete", []uuid.UUID{ids[2]}},
		{"thread", "thread_id=" + thread.String(), []uuid.UUID{ids[0]}},
		{"actor", "actor=bob", []uuid.UUID{ids[2]}},
		{"since", "since=" + url.QueryEscape(base.Add(2*time.Minute).Format(time.RFC3339)), []uuid.UUID{ids[3], ids[2]}},
		{"until", "until=" + url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339)), []uuid.UUID{ids[0]}},
		{"no match", "actor=nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var page api.ChangeEventPage
			must(t, e.get("/change-events/?"+tt.query, ""), http.StatusOK).decode(t, &page)
			var got []uuid.UUID
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if page.NextCursor != "" {
				t.Errorf("next_cursor = %q on the only page, want empty", page.NextCursor)
			}
		})
	}
}

func TestListChangeEventsFields(t *testing.T) {
	e := newEnv(t)
	id := e.insert(event{rowKey: "7", newData: map[string]any{"name": "Ann", "zip": nil}, actor: "alice"})[0]

	var page api.ChangeEventPage
	must(t, e.get("/change-events", ""), http.StatusOK).decode(t, &page)
	if len(page.Items) != 1 {
		t.Fatalf("items = %d, want 1", len(page.Items))
	}
	it := page.Items[0]
	if it.ID != id || it.RowKey != "7" || it.TableName != customers || it.ChangeType != "insert" {
		t.Errorf("item = %+v, want id %s, row key 7, table %s, insert", it, id, customers)
	}
	if it.Status != "synced" || !it.Synced || !it.Validated {
		t.Errorf("status = %s synced %v validated %v, want synced true true", it.Status, it.Synced, it.Validated)
	}
	var newData map[string]*string
	if err := json.Unmarshal(it.NewData, &newData); err != nil {
		t.Fatal(err)
	}
	if len(newData) != 2 || newData["name"] == nil || *newData["name"] != "Ann" || newData["zip"] != nil {
		t.Errorf("new_data = %s, want name Ann and zip null", it.NewData)
	}
	if string(it.OldData) != "null" {
		t.Errorf("old_data = %s, want null", it.OldData)
	}
}

func TestListChangeEventsPagination(t *testing.T) {
	e := newEnv(t)
	base := time.Now().UTC().Add(-time.Hour)
	var events []event
	for i := range 7 {
		// Two events share each time, so the cursor must order by id within one time.
		events = append(events, event{rowKey: "1", detectedAt: base.Add(time.Duration(i/2) * time.Second)})
	}
	e.insert(events...)

	var seen []uuid.UUID
	cursor, pages := "", 0
	for {
		path := "/change-events/?limit=3"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page api.ChangeEventPage
		must(t, e.get(path, ""), http.StatusOK).decode(t, &page)
		pages++
		for _, it := range page.Items {
			seen = append(seen, it.ID)
		}
		if pages == 1 {
			// An event inserted after the first page is newer, so later pages do not show it.
			e.insert(event{rowKey: "2"})
		}
		if page.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = page.NextCursor
	}
	if len(seen) != 7 {
		t.Errorf("saw %d events over %d pages, want 7", len(seen), pages)
	}
	unique := slices.Clone(seen)
	slices.SortFunc(unique, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if len(slices.Compact(unique)) != len(seen) {
		t.Errorf("an event repeats across pages: %v", seen)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
}

// TestListChangeEventsBatchOrder checks that events of one batch, which share
// detected_at, list by commit LSN and position in the transaction, newest first, on one
// page and across pages. Their ids sort the other way, so an order by id fails.
func TestListChangeEventsBatchOrder(t *testing.T) {
	e := newEnv(t)
	at := time.Now().UTC().Add(-time.Minute)
	thread := uuid.New()
	olderInsert := uuid.MustParse("ffffffff-0000-4000-8000-000000000000")
	deleteRow := uuid.MustParse("00000000-0000-4000-8000-000000000003")
	insertRow := uuid.MustParse("00000000-0000-4000-8000-000000000002")
	e.insert(
		event{id: olderInsert, rowKey: "9", detectedAt: at, lsn: 100, seq: 0},
		event{id: deleteRow, thread: thread, rowKey: "4", op: dbgen.ChangeTypeDelete, detectedAt: at, lsn: 200, seq: 0},
		event{id: insertRow, thread: thread, rowKey: "4", detectedAt: at, lsn: 200, seq: 1},
	)
	want := []uuid.UUID{insertRow, deleteRow, olderInsert}

	var page api.ChangeEventPage
	must(t, e.get("/change-events/", ""), http.StatusOK).decode(t, &page)
	var got []uuid.UUID
	for _, it := range page.Items {
		got = append(got, it.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("one page: ids = %v, want %v", got, want)
	}

	got = nil
	cursor := ""
	for range len(want) + 1 {
		path := "/change-events/?limit=1"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page api.ChangeEventPage
		must(t, e.get(path, ""), http.StatusOK).decode(t, &page)
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		cursor = page.NextCursor
		if cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages of one: ids = %v, want %v", got, want)
	}
}

func TestListChangeEventsQuotedTable(t *testing.T) {
	e := newEnv(t)
	mixed := e.insert(event{rowKey: "4", table: "Mixed.Case Table"})[0]
	dotted := e.insert(event{rowKey: "5", table: "my.schema.orders"})[0]
	e.insert(event{rowKey: "6"})

	tests := []struct {
		table string
		want  uuid.UUID
	}{
		{`"Mixed"."Case Table"`, mixed},
		{"Mixed.Case Table", mixed},
		{`"my.schema".orders`, dotted},
		{"my.schema.orders", dotted},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			var page api.ChangeEventPage
			must(t, e.get("/change-events/?table="+url.QueryEscape(tt.table), ""), http.StatusOK).decode(t, &page)
			if len(page.Items) != 1 || page.Items[0].ID != tt.want {
				t.Errorf("items = %+v, want only %s", page.Items, tt.want)
			}
		})
	}
	e.get("/change-events/?table="+url.QueryEscape(`"Mixed`), "").
		wantError(t, http.StatusBadRequest, "invalid_parameter")
}

func TestListChangeEventsInvalidParameters(t *testing.T) {
	e := newEnv(t)
	tests := []struct{ name, query string }{
		{"status", "status=done"},
		{"change type", "change_type=upsert"},
		{"thread", "thread_id=42"},
		{"since", "since=yesterday"},
		{"until before since", "since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z"},
		{"limit zero", "limit=0"},
		{"limit too large", "limit=501"},
		{"limit not a number", "limit=ten"},
		{"cursor", "cursor=abc"},
		{"unknown", "tabel=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.get("/change-events/?"+tt.query, "").wantError(t, http.StatusBadRequest, "invalid_parameter")
		})
	}
}

func TestGetChangeEvent(t *testing.T) {
	e := newEnv(t)
	id := e.insert(event{rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}})[0]
	must(t, e.do(http.MethodPost, "/sync-manual/", "", map[string]any{
		"change_id": id, "action": "approve", "reason": "checked",
	}), http.StatusOK)

	for _, path := range []string{"/change-events/" + id.String(), "/change-events/" + id.String() + "/"} {
		var d api.ChangeEventDetail
		must(t, e.get(path, ""), http.StatusOK).decode(t, &d)
		if d.ID != id || d.Status != "synced" {
			t.Errorf("%s: id %s status %s, want %s synced", path, d.ID, d.Status, id)
		}
		if d.DecidedBy == nil || *d.DecidedBy != "anonymous" {
			t.Errorf("%s: decided_by = %v, want anonymous", path, d.DecidedBy)
		}
		if len(d.SyncLog) != 1 || d.SyncLog[0].Op != "insert" {
			t.Errorf("%s: sync_log = %+v, want one insert", path, d.SyncLog)
		}
		if len(d.UndoRequests) != 0 {
			t.Errorf("%s: undo_requests = %+v, want none", path, d.UndoRequests)
		}
	}
}

func TestUnknownAndInvalidIDs(t *testing.T) {
	e := newEnv(t)
	unknown := uuid.NewString()
	for _, path := range []string{"/change-events/", "/status/", "/undo-requests/"} {
		t.Run(path, func(t *testing.T) {
			e.get(path+unknown, "").wantError(t, http.StatusNotFound, "not_found")
			e.get(path+"not-a-uuid", "").wantError(t, http.StatusBadRequest, "invalid_parameter")
		})
	}
	e.get("/no-such-route", "").wantError(t, http.StatusNotFound, "route_not_found")
	e.do(http.MethodDelete, "/change-events/", "", nil).wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestStatusOfHeldChange(t *testing.T) {
	e := newEnv(t)
	id := e.insert(event{rowKey: "1", status: dbgen.ChangeStatusHeld})[0]
	var st api.Status
	must(t, e.get("/status/"+id.String()+"/", ""), http.StatusOK).decode(t, &st)
	if st.Status != "held" || st.Synced || !st.Validated || st.UndoStatus != "none" {
		t.Errorf("status = %+v, want held, not synced, validated, undo none", st)
	}
	if st.SyncedAt != nil || st.UndoneAt != nil {
		t.Errorf("synced_at %v undone_at %v, want both null", st.SyncedAt, st.UndoneAt)
	}
}

func TestStatusOfSyncWithoutWrite(t *testing.T) {
	e := newEnv(t)
	// A synced UPDATE without a sync_log row: the target had the new values already.
	unwritten := e.insert(event{rowKey: "1", op: dbgen.ChangeTypeUpdate, status: dbgen.ChangeStatusSynced})[0]
	written := e.approve(event{rowKey: "2", newData: map[string]any{"id": "2", "name": "B"}})

	st := e.status(unwritten)
	if !st.Synced || st.TargetWritten || st.SyncedAt != nil {
		t.Errorf("unwritten: synced %v target_written %v synced_at %v, want true, false, null",
			st.Synced, st.TargetWritten, st.SyncedAt)
	}
	st = e.status(written)
	if !st.Synced || !st.TargetWritten || st.SyncedAt == nil {
		t.Errorf("written: synced %v target_written %v synced_at %v, want true, true, a time",
			st.Synced, st.TargetWritten, st.SyncedAt)
	}
}

func TestReadinessOfStandby(t *testing.T) {
	e := newEnvWith(t, func(c *api.Config) {
		c.Standby = func() bool { return true }
		c.Replicating = func() bool { return false }
	})
	got := e.get("/readyz", "").wantError(t, http.StatusServiceUnavailable, "standby")
	if !strings.Contains(got.Message, "active lock") {
		t.Errorf("message does not name the active lock: %s", got.Message)
	}
	if strings.Contains(got.Message, "reconnecting") {
		t.Errorf("message points a standby to reconnects: %s", got.Message)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	must(t, e.get("/healthz", ""), http.StatusOK)
	must(t, e.get("/readyz", ""), http.StatusOK)
	e.st.Close()
	e.get("/readyz", "").wantError(t, http.StatusServiceUnavailable, "not_ready")
}
