package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// lockPipeline holds the pipeline's lock, which every release takes first, until the
// returned function commits the transaction that holds it.
func (e *env) lockPipeline() (unlock func()) {
	e.t.Helper()
	ctx := context.Background()
	tx, err := e.st.Pool.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "changesync/"+pipelineName); err != nil {
		e.t.Fatal(err)
	}
	done := false
	unlock = func() {
		if !done {
			done = true
			if err := tx.Commit(ctx); err != nil {
				e.t.Error(err)
			}
		}
	}
	e.t.Cleanup(unlock)
	return unlock
}

func (e *env) status(id uuid.UUID) api.Status {
	e.t.Helper()
	var st api.Status
	must(e.t, e.get("/status/"+id.String(), ""), http.StatusOK).decode(e.t, &st)
	return st
}

func TestSyncManualOutlastsRequestTimeout(t *testing.T) {
	e := newEnvWith(t, func(c *api.Config) { c.HandlerTimeout = 300 * time.Millisecond })
	thread := uuid.New()
	ids := e.insert(
		event{thread: thread, rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}},
		event{thread: thread, rowKey: "2", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "2", "name": "B"}},
	)
	unlock := e.lockPipeline()

	body := map[string]any{"thread_id": thread, "action": "approve", "reason": "bulk import checked"}
	var accepted api.SyncManualAccepted
	must(t, e.do(http.MethodPost, "/sync-manual/", "", body), http.StatusAccepted).decode(t, &accepted)
	if accepted.Status != "running" {
		t.Errorf("status = %q, want running", accepted.Status)
	}
	if accepted.ThreadID == nil || *accepted.ThreadID != thread {
		t.Errorf("thread_id = %v, want %s", accepted.ThreadID, thread)
	}
	if strings.Contains(accepted.Message, "time window") {
		t.Errorf("message gives advice of another request: %s", accepted.Message)
	}
	logged := e.log.String()
	if !strings.Contains(logged, "the release continues in the background") ||
		!strings.Contains(logged, "thread_id="+thread.String()) || !strings.Contains(logged, "route=/sync-manual/") {
		t.Errorf("log lacks the timeout with route and thread id:\n%s", logged)
	}

	if st := e.status(ids[0]); !st.ReleaseRunning || st.Status != "held" {
		t.Errorf("status during the release = %s, release_running %v; want held, true", st.Status, st.ReleaseRunning)
	}
	e.do(http.MethodPost, "/sync-manual/", "", body).wantError(t, http.StatusConflict, "release_running")

	unlock()
	deadline := time.Now().Add(20 * time.Second)
	for e.status(ids[1]).ReleaseRunning && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range ids {
		if st := e.status(id); st.Status != "synced" || st.ReleaseRunning {
			t.Errorf("change %s after the release = %s, release_running %v; want synced, false",
				id, st.Status, st.ReleaseRunning)
		}
	}
	if _, _, ok := e.targetRow(2); !ok {
		t.Error("row 2 is missing in the target after the release")
	}
	if !strings.Contains(e.log.String(), "held changes decided in the background") {
		t.Errorf("log lacks the outcome of the release:\n%s", e.log.String())
	}
}

func TestRequestTimeoutLogged(t *testing.T) {
	e := newEnvWith(t, func(c *api.Config) { c.HandlerTimeout = 300 * time.Millisecond })
	id := e.approve(event{rowKey: "1", newData: map[string]any{"id": "1", "name": "A"}})
	// The undo locks the change's row, so a transaction that holds it makes the undo wait.
	ctx := context.Background()
	tx, err := e.st.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT 1 FROM changesync.change_events WHERE id = $1 FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}

	got := e.do(http.MethodPost, "/undo-request/", "", map[string]any{"change_id": id, "reason": "r"}).
		wantError(t, http.StatusServiceUnavailable, "timeout")
	if strings.Contains(got.Message, "time window") {
		t.Errorf("message advises a shorter time window for an undo of one change: %s", got.Message)
	}
	if !strings.Contains(got.Message, "changesync undo") {
		t.Errorf("message lacks the command without a time limit: %s", got.Message)
	}
	logged := e.log.String()
	if n := strings.Count(logged, "api request timed out"); n != 1 {
		t.Errorf("log has %d timeout lines, want 1:\n%s", n, logged)
	}
	if !strings.Contains(logged, "route=/undo-request/") || !strings.Contains(logged, "change_id="+id.String()) {
		t.Errorf("timeout log line lacks the route or the change id:\n%s", logged)
	}
}
