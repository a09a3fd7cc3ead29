package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
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

// postJSON sends body to url and returns the response. It reports errors instead of
// failing the test, so it may run in its own goroutine.
func postJSON(url string, body any) (response, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return response{}, err
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer func() { _ = res.Body.Close() }()
	raw, err = io.ReadAll(res.Body)
	return response{status: res.StatusCode, body: raw}, err
}

func TestShutdownCancelsRunningRelease(t *testing.T) {
	e := newEnv(t)
	thread := uuid.New()
	ids := e.insert(
		event{thread: thread, rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}},
		event{thread: thread, rowKey: "2", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "2", "name": "B"}},
	)
	// The release waits for the pipeline's lock until the shutdown cancels it.
	unlock := e.lockPipeline()

	srv, err := api.New(e.srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	type result struct {
		res response
		err error
	}
	answered := make(chan result, 1)
	go func() {
		body := map[string]any{"thread_id": thread, "action": "approve", "reason": "bulk import checked"}
		res, err := postJSON(base+"/sync-manual/", body)
		answered <- result{res, err}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st api.Status
		if err := json.Unmarshal([]byte(httpGet(t, base+"/status/"+ids[0].String())), &st); err != nil {
			t.Fatal(err)
		}
		if st.ReleaseRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the release did not start within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The shutdown waits up to 15 s for open requests. A release that is not canceled
	// keeps its request open until then, and Shutdown fails.
	cancel()
	start := time.Now()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Serve took %s to shut down, want at most 10s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return within 30 s of its context's end")
	}

	var got result
	select {
	case got = <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the client got no response within 10 s of the shutdown")
	}
	if got.err != nil {
		t.Fatalf("POST /sync-manual/ during the shutdown: %v", got.err)
	}
	apiErr := got.res.wantError(t, http.StatusServiceUnavailable, "shutting_down")
	if !strings.Contains(apiErr.Message, "still held") {
		t.Errorf("message does not say that the changes are still held: %s", apiErr.Message)
	}

	unlock()
	for _, id := range ids {
		if st := e.status(id); st.Status != "held" {
			t.Errorf("change %s after the canceled release = %s, want held", id, st.Status)
		}
	}
	if _, _, ok := e.targetRow(1); ok {
		t.Error("row 1 is in the target after the canceled release")
	}
	logged := e.log.String()
	if strings.Contains(logged, "api request failed") || strings.Contains(logged, "level=ERROR") {
		t.Errorf("log has an error for the canceled release:\n%s", logged)
	}
	if !strings.Contains(logged, "release canceled by the API's shutdown") ||
		!strings.Contains(logged, "thread_id="+thread.String()) {
		t.Errorf("log lacks the canceled release with its thread id:\n%s", logged)
	}
}

func TestSyncManualDuringShutdown(t *testing.T) {
	e := newEnv(t)
	id := e.insert(event{rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}})[0]
	// Close cancels the releases as a shutdown does. The env's server still serves.
	e.srv.Close()

	body := map[string]any{"change_id": id, "action": "approve", "reason": "checked"}
	e.do(http.MethodPost, "/sync-manual/", "", body).wantError(t, http.StatusServiceUnavailable, "shutting_down")
	if st := e.status(id); st.Status != "held" || st.ReleaseRunning {
		t.Errorf("change after the release that did not start = %s, release_running %v; want held, false",
			st.Status, st.ReleaseRunning)
	}
}

func TestShutdownCancelsDetachedRelease(t *testing.T) {
	e := newEnvWith(t, func(c *api.Config) { c.HandlerTimeout = 300 * time.Millisecond })
	id := e.insert(event{rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}})[0]
	unlock := e.lockPipeline()

	body := map[string]any{"change_id": id, "action": "approve", "reason": "checked"}
	must(t, e.do(http.MethodPost, "/sync-manual/", "", body), http.StatusAccepted)
	// Close cancels the release, which returned 202 already, and waits until it ends.
	closed := make(chan struct{})
	go func() {
		e.srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s while a release waited for the pipeline's lock")
	}

	unlock()
	if st := e.status(id); st.Status != "held" || st.ReleaseRunning {
		t.Errorf("change after the canceled release = %s, release_running %v; want held, false",
			st.Status, st.ReleaseRunning)
	}
	logged := e.log.String()
	if strings.Contains(logged, "level=ERROR") {
		t.Errorf("log has an error for the canceled release:\n%s", logged)
	}
	if !strings.Contains(logged, "release canceled by the API's shutdown") ||
		!strings.Contains(logged, "change_id="+id.String()) {
		t.Errorf("log lacks the canceled release with its change id:\n%s", logged)
	}
}
