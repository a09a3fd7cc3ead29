package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/pgtest"
)

// freePort returns a loopback address whose port is free now.
func freePort(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// call sends a request to the API and returns the status and the decoded JSON body.
func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.NewDecoder(bytes.NewReader(raw)).Decode(&out)
	return resp.StatusCode, out
}

func TestAPIAgainstRunningPipeline(t *testing.T) {
	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	src, dst := connect(t, sourceURL), connect(t, targetURL)
	for _, c := range []string{sourceURL, targetURL} {
		if _, err := connect(t, c).Exec(context.Background(),
			"CREATE TABLE customers (id int PRIMARY KEY, address text, zip text)"); err != nil {
			t.Fatal(err)
		}
	}
	addr := freePort(t)
	base := "http://" + addr
	s := startSidecar(t, writeConfig(t, fmt.Sprintf(`
source: {slot: api_e2e}
tables: [{source: public.customers}]
rules:
  - {name: hold-po-box, when: "has(new.address) && new.address.startsWith('PO Box')", action: hold}
api: {listen: '%s'}
`, addr)), sourceURL, targetURL)
	waitUntil(t, 30*time.Second, "readiness", s, func() bool {
		status, _ := call(t, http.MethodGet, base+"/readyz", "")
		return status == http.StatusOK
	})

	_, err := src.Exec(context.Background(), `INSERT INTO customers VALUES (2, '1 Navy Way', '20301');
		UPDATE customers SET address = '7 Harbor Rd', zip = '02139' WHERE id = 2`)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "two change events", s, func() bool { return countEvents(t, dst) == 2 })

	status, list := call(t, http.MethodGet, base+"/change-events/?table=public.customers&change_type=update", "")
	items, _ := list["items"].([]any)
	if status != http.StatusOK || len(items) != 1 {
		t.Fatalf("GET /change-events/: status %d, body %v; want one update", status, list)
	}
	changeID, _ := items[0].(map[string]any)["id"].(string)

	status, diff := call(t, http.MethodGet, base+"/diff/2?table=public.customers", "")
	if status != http.StatusOK || !strings.Contains(fmt.Sprint(diff), "7 Harbor Rd") {
		t.Errorf("GET /diff/2: status %d, body %v; want the address change", status, diff)
	}

	body := fmt.Sprintf(`{"change_id": %q, "reason": "wrong customer"}`, changeID)
	status, undone := call(t, http.MethodPost, base+"/undo-request/", body)
	if status != http.StatusOK || undone["status"] != "applied" {
		t.Fatalf("POST /undo-request/: status %d, body %v; want applied", status, undone)
	}
	var address, zip string
	if err := dst.QueryRow(context.Background(), "SELECT address, zip FROM customers WHERE id = 2").
		Scan(&address, &zip); err != nil {
		t.Fatal(err)
	}
	if address != "1 Navy Way" || zip != "20301" {
		t.Errorf("target after undo: %s %s, want 1 Navy Way 20301", address, zip)
	}
	status, again := call(t, http.MethodPost, base+"/undo-request/", body)
	if status != http.StatusConflict || again["code"] != "already_undone" {
		t.Errorf("second undo: status %d, body %v; want 409 already_undone", status, again)
	}
	status, st := call(t, http.MethodGet, base+"/status/"+changeID, "")
	if status != http.StatusOK || st["status"] != "undone" {
		t.Errorf("GET /status: status %d, body %v; want undone", status, st)
	}
	requestID, _ := undone["request_id"].(string)
	if status, req := call(t, http.MethodGet, base+"/undo-requests/"+requestID, ""); status != http.StatusOK {
		t.Errorf("GET /undo-requests/%s: status %d, body %v", requestID, status, req)
	}

	// A held change is approved through POST /sync-manual/.
	if _, err := src.Exec(context.Background(), `UPDATE customers SET address = 'PO Box 9' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	var heldID string
	waitUntil(t, 30*time.Second, "the held change", s, func() bool {
		_, held := call(t, http.MethodGet, base+"/change-events/?status=held", "")
		items, _ := held["items"].([]any)
		if len(items) != 1 {
			return false
		}
		heldID, _ = items[0].(map[string]any)["id"].(string)
		return true
	})
	status, decided := call(t, http.MethodPost, base+"/sync-manual/",
		fmt.Sprintf(`{"change_id": %q, "action": "approve", "reason": "checked"}`, heldID))
	if status != http.StatusOK {
		t.Fatalf("POST /sync-manual/: status %d, body %v", status, decided)
	}
	if err := dst.QueryRow(context.Background(), "SELECT address FROM customers WHERE id = 2").Scan(&address); err != nil {
		t.Fatal(err)
	}
	if address != "PO Box 9" {
		t.Errorf("target address after the approval = %q, want PO Box 9", address)
	}
	for _, path := range []string{"/healthz", "/openapi.json"} {
		if status, _ := call(t, http.MethodGet, base+path, ""); status != http.StatusOK {
			t.Errorf("GET %s: status %d", path, status)
		}
	}
	metricsResp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(metricsResp.Body)
	_ = metricsResp.Body.Close()
	if !strings.Contains(string(body2), `changesync_changes_total{pipeline="api_e2e",status="held",table="public.customers"} 1`) {
		t.Errorf("/metrics lacks the held change:\n%s", body2)
	}
	if !strings.Contains(string(body2), `changesync_notify_outbox_depth{pipeline="api_e2e"}`) {
		t.Errorf("/metrics lacks the outbox depth with the pipeline label:\n%s", body2)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("sidecar exit after SIGTERM: %v; log:\n%s", err, tail(s.log.String(), 4000))
	}
}

func TestReleaseCanceledBySIGTERM(t *testing.T) {
	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	src, dst := connect(t, sourceURL), connect(t, targetURL)
	for _, c := range []string{sourceURL, targetURL} {
		if _, err := connect(t, c).Exec(context.Background(),
			"CREATE TABLE customers (id int PRIMARY KEY, address text, zip text)"); err != nil {
			t.Fatal(err)
		}
	}
	addr := freePort(t)
	base := "http://" + addr
	s := startSidecar(t, writeConfig(t, fmt.Sprintf(`
source: {slot: release_e2e}
tables: [{source: public.customers}]
rules:
  - {name: hold-po-box, when: "has(new.address) && new.address.startsWith('PO Box')", action: hold}
api: {listen: '%s'}
`, addr)), sourceURL, targetURL)
	waitUntil(t, 30*time.Second, "readiness", s, func() bool {
		status, _ := call(t, http.MethodGet, base+"/readyz", "")
		return status == http.StatusOK
	})
	if _, err := src.Exec(context.Background(), `INSERT INTO customers VALUES (1, 'PO Box 9', '20301')`); err != nil {
		t.Fatal(err)
	}
	var heldID string
	waitUntil(t, 30*time.Second, "the held change", s, func() bool {
		return dst.QueryRow(context.Background(),
			"SELECT id::text FROM changesync.change_events WHERE status = 'held'").Scan(&heldID) == nil
	})

	// The release takes the pipeline's lock, then locks the held change's row, so a
	// transaction that locks the row first keeps the release running.
	blocker, err := dst.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blocker.Rollback(context.Background()) }()
	if _, err := blocker.Exec(context.Background(),
		"SELECT 1 FROM changesync.change_events WHERE id = $1 FOR UPDATE", heldID); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   map[string]any
	}
	answered := make(chan answer, 1)
	go func() {
		status, body := call(t, http.MethodPost, base+"/sync-manual/",
			fmt.Sprintf(`{"change_id": %q, "action": "approve", "reason": "checked"}`, heldID))
		answered <- answer{status, body}
	}()
	waitUntil(t, 30*time.Second, "the running release", s, func() bool {
		_, st := call(t, http.MethodGet, base+"/status/"+heldID, "")
		return st["release_running"] == true
	})

	start := time.Now()
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("sidecar exit after SIGTERM during a release: %v; log:\n%s", err, tail(s.log.String(), 4000))
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("sidecar took %s to exit after SIGTERM, want at most 10s", took)
	}
	got := <-answered
	if got.status != http.StatusServiceUnavailable || got.body["code"] != "shutting_down" {
		t.Errorf("POST /sync-manual/ during the shutdown: status %d, body %v; want 503 shutting_down",
			got.status, got.body)
	}
	if logged := s.log.String(); strings.Contains(logged, "api request failed") {
		t.Errorf("log has the canceled release as a failed request:\n%s", tail(logged, 4000))
	}

	if err := blocker.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := dst.QueryRow(context.Background(), "SELECT status::text FROM changesync.change_events WHERE id = $1",
		heldID).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "held" {
		t.Errorf("change after the canceled release = %s, want held", status)
	}
}
