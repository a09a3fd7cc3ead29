package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/pgtest"
)

// hookReceiver records the webhook deliveries whose signature verifies.
type hookReceiver struct {
	secret string
	mu     sync.Mutex
	events []map[string]any
	bad    int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	h.mu.Lock()
	defer h.mu.Unlock()
	if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		h.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.events = append(h.events, ev)
}

func (h *hookReceiver) ofType(typ string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, ev := range h.events {
		if ev["type"] == typ {
			out = append(out, ev)
		}
	}
	return out
}

func TestRunValidatesAndNotifies(t *testing.T) {
	// The secret is a base64 key, as Standard Webhooks secrets are.
	hook := &hookReceiver{secret: "test-secret-for-webhooks"}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	t.Setenv("TEST_HOOK_SECRET", hook.secret)

	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	src, dst := connect(t, sourceURL), connect(t, targetURL)
	ddl := "CREATE TABLE customers (id int PRIMARY KEY, name text, zip text)"
	if _, err := src.Exec(context.Background(), ddl); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Exec(context.Background(), ddl); err != nil {
		t.Fatal(err)
	}
	cfg := `
source: {slot: validate_e2e}
tables: [{source: public.customers}]
rules:
  - name: skip-test-rows
    when: "has(new.name) && new.name == 'test row'"
    action: skip
  - name: zip-is-valid
    when: "'zip' in changed && (new.zip == null || !new.zip.matches('^[0-9]{5}$'))"
    action: reject
    reason: zip code must have five digits
notify:
  webhooks:
    - name: audit
      url: ` + srv.URL + `
      secret_env: TEST_HOOK_SECRET
      events: [reject, sync]
`
	s := startSidecar(t, writeConfig(t, cfg), sourceURL, targetURL)
	waitUntil(t, 30*time.Second, "the initial snapshot", s, func() bool {
		var n int
		err := dst.QueryRow(context.Background(), "SELECT count(*) FROM changesync.snapshots").Scan(&n)
		return err == nil && n == 1
	})
	_, err := src.Exec(context.Background(), `INSERT INTO customers VALUES (1, 'Ann', '02139');
		INSERT INTO customers VALUES (2, 'Bob', '2O139');
		INSERT INTO customers VALUES (3, 'test row', '12345')`)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "three change events", s, func() bool { return countEvents(t, dst) == 3 })
	waitUntil(t, 30*time.Second, "the webhook deliveries", s, func() bool {
		return len(hook.ofType("reject")) == 1 && len(hook.ofType("sync")) == 1
	})

	var ids []int
	rows, err := dst.Query(context.Background(), "SELECT id FROM customers ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	if len(ids) != 1 || ids[0] != 1 {
		t.Errorf("target rows %v, want only customer 1", ids)
	}
	var status, decidedBy string
	err = dst.QueryRow(context.Background(), `SELECT status, decided_by FROM changesync.change_events
		WHERE row_key = '2'`).Scan(&status, &decidedBy)
	if err != nil {
		t.Fatal(err)
	}
	if status != "rejected" || decidedBy != "rule:zip-is-valid" {
		t.Errorf("change of customer 2: status %s by %s, want rejected by rule:zip-is-valid", status, decidedBy)
	}
	err = dst.QueryRow(context.Background(), `SELECT status, decided_by FROM changesync.change_events
		WHERE row_key = '3'`).Scan(&status, &decidedBy)
	if err != nil {
		t.Fatal(err)
	}
	if status != "skipped" || decidedBy != "rule:skip-test-rows" {
		t.Errorf("change of customer 3: status %s by %s, want skipped by rule:skip-test-rows", status, decidedBy)
	}
	reject := hook.ofType("reject")[0]
	if reject["row_key"] != "2" || reject["table"] != "public.customers" {
		t.Errorf("reject event = %v, want row 2 of public.customers", reject)
	}
	if hook.bad != 0 {
		t.Errorf("%d deliveries failed signature verification", hook.bad)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("sidecar exit after SIGTERM: %v; log:\n%s", err, tail(s.log.String(), 4000))
	}
}

func TestInvalidRuleStopsStart(t *testing.T) {
	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	for _, url := range []string{sourceURL, targetURL} {
		if _, err := connect(t, url).Exec(context.Background(), "CREATE TABLE t (id int PRIMARY KEY, zip text)"); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := writeConfig(t, `
source: {slot: bad_rule}
tables: [{source: public.t}]
rules:
  - name: skip-test-rows
    when: "has(new.name) && new.name == 'test row'"
    action: skip
  - name: zip-is-valid
    when: "'zip' in changed && !nwe.zip.matches('^[0-9]{5}$')"
    action: reject
`)
	for _, command := range []string{"check", "run"} {
		cmd := exec.Command(binary, command, "--config", cfgPath)
		cmd.Env = append(os.Environ(), "CHANGESYNC_SOURCE_URL="+sourceURL, "CHANGESYNC_TARGET_URL="+targetURL)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s accepted an invalid rule:\n%s", command, out)
		}
		for _, want := range []string{`"zip-is-valid"`, "line 1, column", "undeclared reference to 'nwe'"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s output lacks %q:\n%s", command, want, out)
			}
		}
	}
}

func TestCheckReportsNotifyErrors(t *testing.T) {
	cfgPath := writeConfig(t, `
source: {url: "postgres://x@127.0.0.1:1/a"}
target: {url: "postgres://x@127.0.0.1:1/b"}
tables: [{source: public.t}]
notify:
  webhooks:
    - {name: hook, url_env: TEST_HOOK_URL_UNSET, secret_env: TEST_HOOK_SECRET_UNSET, events: [hold]}
`)
	out, err := exec.Command(binary, "check", "--config", cfgPath).CombinedOutput()
	if err == nil {
		t.Fatalf("check passed with an unset webhook URL:\n%s", out)
	}
	if !strings.Contains(string(out), "environment variable TEST_HOOK_URL_UNSET is not set") {
		t.Errorf("check output does not name the unset variable:\n%s", out)
	}
}
