package notify

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// sampleEvents returns one event of every type, each on its own row key.
func sampleEvents() []Event {
	change := map[string]ColumnChange{
		"zip":     {Old: json.RawMessage(`"12345"`), New: json.RawMessage(`"54321"`)},
		"address": {Old: json.RawMessage(`"1 Old Street"`), New: json.RawMessage(`"2 New Street"`)},
	}
	events := make([]Event, 0, len(EventTypes))
	for i, typ := range EventTypes {
		ev := Event{
			Type: typ, Pipeline: "crm", Table: "crm.customers", TargetTable: "billing.customers",
			RowKey: fmt.Sprint(40 + i), Op: "update", ChangeID: uuid.New(), Actor: "alice", Changes: change,
		}
		switch typ {
		case EventHold, EventReject, EventSkip:
			ev.Decision = &Decision{Verdict: string(typ), Reason: "zip must have five digits", DecidedBy: "zip-is-valid"}
		case EventBulkGuard:
			ev.Volume = &Volume{Rows: 1500, Limit: 1000}
		case EventBurst:
			ev.Volume = &Volume{Rows: 300, Limit: 100, Window: "1m0s"}
		case EventUndo:
			ev.Undo = &Undo{RequestID: uuid.New(), Requestor: "bob", Reason: "customer asked to revert", Status: "applied"}
		case EventFailed:
			ev.Message = "target row is locked"
		}
		events = append(events, ev)
	}
	return events
}

func TestDispatcherDeliversEveryEventType(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	slackHook := newReceiver(t, nil)
	mail := newMailServer(t, false)

	cfg := baseConfig()
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL+"/changesync", "*")}
	cfg.Slack = []Slack{{
		Destination: Destination{Name: "slack", Events: []EventType{"*"}, Timeout: 2 * time.Second},
		WebhookURL:  Secret(slackHook.URL + "/services/T000/B000/XXXX"),
	}}
	cfg.Email = []Email{emailConfig(mail, TLSStartTLS, "*")}
	events := enqueue(t, st, sampleEvents()...)
	r := startDispatcher(t, st, cfg)

	n := len(events)
	waitFor(t, 20*time.Second, "every destination to get every event", func() bool {
		return hook.count() >= n && slackHook.count() >= n && len(mail.received()) >= n
	})
	waitFor(t, 5*time.Second, "outbox rows to be finished", func() bool {
		return outboxState(t, st, events[n-1].ID.String()) == "delivered"
	})

	var gotTypes []EventType
	for _, ev := range webhookBodies(t, hook.received()) {
		gotTypes = append(gotTypes, ev.Type)
	}
	slices.Sort(gotTypes)
	wantTypes := slices.Sorted(slices.Values(EventTypes))
	if !slices.Equal(gotTypes, wantTypes) {
		t.Errorf("webhook event types = %v, want %v", gotTypes, wantTypes)
	}

	for _, ev := range events {
		if got := outboxState(t, st, ev.ID.String()); got != "delivered" {
			t.Errorf("outbox row of %s is %s, want delivered", ev.Type, got)
		}
		for _, d := range deliveries(t, st, ev.ID.String()) {
			if !d.Delivered || d.Attempts != 1 {
				t.Errorf("%s delivery to %s = %+v, want delivered after 1 attempt", ev.Type, d.Destination, d)
			}
		}
	}
	for _, name := range []string{"hook", "slack", "mail"} {
		var total float64
		for _, typ := range EventTypes {
			total += testutil.ToFloat64(r.d.metrics.delivered.WithLabelValues(name, string(typ)))
		}
		if total != float64(n) {
			t.Errorf("changesync_notify_delivered_total{destination=%q} = %v, want %d", name, total, n)
		}
	}
	if depth := testutil.ToFloat64(r.d.metrics.depth); depth != 0 {
		t.Errorf("changesync_notify_outbox_depth = %v, want 0", depth)
	}
}

func TestDispatcherSlackMessageText(t *testing.T) {
	st := newStore(t)
	slackHook := newReceiver(t, nil)
	cfg := baseConfig()
	cfg.Slack = []Slack{{
		Destination: Destination{Name: "slack", Events: []EventType{EventUndo, EventSync}, Timeout: 2 * time.Second},
		WebhookURL:  Secret(slackHook.URL + "/services/T000/B000/XXXX"),
	}}
	events := sampleEvents()
	enqueue(t, st, events[0], events[len(events)-1]) // sync and undo
	startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "two Slack messages", func() bool { return slackHook.count() >= 2 })
	var texts []string
	for _, r := range slackHook.received() {
		var msg struct{ Text string }
		if err := json.Unmarshal(r.Body, &msg); err != nil {
			t.Fatalf("decode Slack body %q: %v", r.Body, err)
		}
		texts = append(texts, msg.Text)
	}
	all := strings.Join(texts, "\n---\n")
	for _, want := range []string{
		"*Synced update of crm.customers row 40*",
		"Table: crm.customers → billing.customers",
		"Who: alice",
		"zip: 12345 → 54321",
		"address: 1 Old Street → 2 New Street",
		"*Undo applied for update of crm.customers row 47*",
		"Undo requested by: bob",
		"Reason: customer asked to revert",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("Slack messages lack %q:\n%s", want, all)
		}
	}
}

func TestDispatcherSlackBotToken(t *testing.T) {
	st := newStore(t)
	api := newReceiver(t, nil)
	cfg := baseConfig()
	cfg.Slack = []Slack{{
		Destination: Destination{Name: "slack", Events: []EventType{EventHold}, Timeout: 2 * time.Second},
		Token:       "xoxb-test-token", Channel: "#changesync", APIURL: api.URL + "/api",
	}}
	enqueue(t, st, sampleEvents()[1])
	startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "a chat.postMessage call", func() bool { return api.count() >= 1 })
	req := api.received()[0]
	if req.Path != "/api/chat.postMessage" {
		t.Errorf("path = %q, want /api/chat.postMessage", req.Path)
	}
	body := string(req.Body)
	// slack-go sends the token of chat.postMessage as a form field.
	if req.Header.Get("Authorization") != "Bearer xoxb-test-token" && !strings.Contains(body, "token=xoxb-test-token") {
		t.Errorf("request carries no bot token: header %q, body %q", req.Header.Get("Authorization"), body)
	}
	if !strings.Contains(body, "channel=%23changesync") {
		t.Errorf("body %q does not name the channel", body)
	}
	if !strings.Contains(body, "Held+update+of+crm.customers+row+41") {
		t.Errorf("body %q lacks the title", body)
	}
}

func TestDispatcherEmail(t *testing.T) {
	for _, mode := range []string{TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			st := newStore(t)
			mail := newMailServer(t, mode == TLSImplicit)
			cfg := baseConfig()
			cfg.Email = []Email{emailConfig(mail, mode, EventUndo)}
			events := sampleEvents()
			enqueue(t, st, events[len(events)-1])
			startDispatcher(t, st, cfg)

			waitFor(t, 10*time.Second, "one mail", func() bool { return len(mail.received()) >= 1 })
			msg := mail.received()[0]
			for _, want := range []string{
				"Subject: [changesync] Undo applied for update of crm.customers row 47",
				"Content-Type: text/plain",
				"Undo requested by: bob",
				"Reason: customer asked to revert",
				"Who: alice",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("mail lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, mailPassword) {
				t.Error("mail contains the SMTP password")
			}
		})
	}
}

func TestDispatcherRetriesAfterServerErrors(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, func(n int, _ *http.Request) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	cfg := baseConfig()
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, EventSync)}
	ev := enqueue(t, st, sampleEvents()[0])[0]
	r := startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "the delivery to succeed", func() bool {
		d := deliveries(t, st, ev.ID.String())
		return len(d) == 1 && d[0].Delivered
	})
	reqs := hook.received()
	if len(reqs) != 3 {
		t.Fatalf("requests = %d, want 3 (two 500s, then success)", len(reqs))
	}
	for i, req := range reqs {
		if got := req.Header.Get("webhook-id"); got != ev.ID.String() {
			t.Errorf("request %d webhook-id = %q, want the event id %s on every attempt", i, got, ev.ID)
		}
	}
	d := deliveries(t, st, ev.ID.String())[0]
	if d.Attempts != 3 {
		t.Errorf("attempts = %d, want 3", d.Attempts)
	}
	if d.LastError != "" {
		t.Errorf("last_error = %q, want it cleared after success", d.LastError)
	}
	if got := testutil.ToFloat64(r.d.metrics.retries.WithLabelValues("hook")); got != 2 {
		t.Errorf("changesync_notify_retries_total = %v, want 2", got)
	}
}

func TestDispatcherRetriesAfterTimeout(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			select { // outlast the sender's timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
		return http.StatusOK
	})
	cfg := baseConfig()
	wh := webhookConfig("hook", hook.URL, EventSync)
	wh.Timeout = 200 * time.Millisecond
	cfg.Webhooks = []Webhook{wh}
	ev := enqueue(t, st, sampleEvents()[0])[0]
	r := startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "the delivery to succeed", func() bool {
		d := deliveries(t, st, ev.ID.String())
		return len(d) == 1 && d[0].Delivered
	})
	if d := deliveries(t, st, ev.ID.String())[0]; d.Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (a timeout, then success)", d.Attempts)
	}
	if got := testutil.ToFloat64(r.d.metrics.retries.WithLabelValues("hook")); got != 1 {
		t.Errorf("changesync_notify_retries_total = %v, want 1", got)
	}
	if !strings.Contains(r.logs.String(), "timed out after 200ms") {
		t.Errorf("log does not report the timeout:\n%s", r.logs.String())
	}
}

func TestDispatcherRestartDeliversPendingRows(t *testing.T) {
	st := newStore(t)
	var up sync.Mutex // held while the receiver is down
	down := true
	hook := newReceiver(t, func(int, *http.Request) int {
		up.Lock()
		defer up.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := baseConfig()
	cfg.Retry.MaxAttempts = 100
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, "*")}
	events := enqueue(t, st, sampleEvents()[:3]...)

	first := startDispatcher(t, st, cfg)
	waitFor(t, 10*time.Second, "a failed attempt", func() bool { return hook.count() >= 1 })
	first.stop()
	for _, ev := range events {
		if got := outboxState(t, st, ev.ID.String()); got != "pending" {
			t.Fatalf("outbox row after the first run is %s, want pending", got)
		}
	}

	up.Lock()
	down = false
	up.Unlock()
	failedBefore := hook.count()
	startDispatcher(t, reopen(t, st), cfg)
	waitFor(t, 10*time.Second, "every row to be delivered after the restart", func() bool {
		for _, ev := range events {
			if outboxState(t, st, ev.ID.String()) != "delivered" {
				return false
			}
		}
		return true
	})

	acked := countByID(t, hook.received()[failedBefore:])
	for _, ev := range events {
		if acked[ev.ID.String()] != 1 {
			t.Errorf("event %s acknowledged %d times after the restart, want 1", ev.ID, acked[ev.ID.String()])
		}
	}
}

func TestDispatcherRestartDoesNotResendAcknowledged(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	cfg := baseConfig()
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, "*")}
	events := enqueue(t, st, sampleEvents()...)

	first := startDispatcher(t, st, cfg)
	// Delivered means acknowledged and committed: a stop between the two sends the event
	// again, as docs/notifications.md says.
	waitFor(t, 10*time.Second, "every event to be delivered", func() bool {
		for _, ev := range events {
			if outboxState(t, st, ev.ID.String()) != "delivered" {
				return false
			}
		}
		return true
	})
	first.stop()

	startDispatcher(t, reopen(t, st), cfg)
	time.Sleep(20 * cfg.PollInterval)
	if got := hook.count(); got != len(events) {
		t.Errorf("requests after the restart = %d, want %d: acknowledged events were sent again", got, len(events))
	}
}

func countByID(t *testing.T, reqs []request) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, r := range reqs {
		counts[r.Header.Get("webhook-id")]++
	}
	return counts
}

func TestDispatcherDigest(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	slackHook := newReceiver(t, nil)
	cfg := baseConfig()
	wh := webhookConfig("hook", hook.URL, "*")
	wh.Digest = &DigestConfig{Interval: 300 * time.Millisecond, Sample: 2}
	cfg.Webhooks = []Webhook{wh}
	cfg.Slack = []Slack{{
		Destination: Destination{
			Name: "slack", Events: []EventType{"*"}, Timeout: 2 * time.Second,
			Digest: &DigestConfig{Interval: 300 * time.Millisecond, Sample: 1},
		},
		WebhookURL: Secret(slackHook.URL + "/services/T/B/X"),
	}}
	events := enqueue(t, st, sampleEvents()[:5]...)
	startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "one digest on each destination", func() bool {
		return hook.count() >= 1 && slackHook.count() >= 1
	})
	var digest Digest
	if err := json.Unmarshal(hook.received()[0].Body, &digest); err != nil {
		t.Fatalf("decode digest: %v", err)
	}
	if digest.Type != "digest" {
		t.Errorf("type = %q, want digest", digest.Type)
	}
	if digest.Count != 5 {
		t.Errorf("count = %d, want 5", digest.Count)
	}
	if len(digest.Sample) != 2 {
		t.Errorf("sample has %d events, want 2", len(digest.Sample))
	}
	if len(digest.EventIDs) != 5 {
		t.Errorf("event_ids has %d ids, want 5", len(digest.EventIDs))
	}
	if digest.Counts[EventSync] != 1 || digest.Counts[EventHold] != 1 {
		t.Errorf("counts = %v, want one sync and one hold", digest.Counts)
	}
	if got := hook.received()[0].Header.Get("webhook-id"); got != digest.ID.String() {
		t.Errorf("webhook-id = %q, want the digest id %s", got, digest.ID)
	}
	if text := string(slackHook.received()[0].Body); !strings.Contains(text, "changesync digest: 5 events") {
		t.Errorf("Slack digest %s lacks the count", text)
	}

	// Events enqueued later go into the next digest, not a message of their own.
	more := enqueue(t, st, sampleEvents()[5:7]...)
	waitFor(t, 10*time.Second, "a second digest on each destination", func() bool {
		return hook.count() >= 2 && slackHook.count() >= 2
	})
	var second Digest
	if err := json.Unmarshal(hook.received()[1].Body, &second); err != nil {
		t.Fatalf("decode second digest: %v", err)
	}
	if second.Count != 2 {
		t.Errorf("second digest count = %d, want 2", second.Count)
	}
	for _, ev := range append(events, more...) {
		for _, d := range deliveries(t, st, ev.ID.String()) {
			if !d.Delivered {
				t.Errorf("delivery of %s to %s not marked delivered", ev.ID, d.Destination)
			}
		}
	}
}

func TestDispatcherGivesUpAfterRetryBudget(t *testing.T) {
	st := newStore(t)

	// A port that refuses connections: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String() + "/hooks/tok-SECRETPATH"
	_ = ln.Close()

	cfg := baseConfig()
	cfg.Retry.MaxAttempts = 3
	cfg.Webhooks = []Webhook{webhookConfig("dead", deadURL, "*")}
	ev := enqueue(t, st, sampleEvents()[0])[0]
	r := startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "the delivery to be given up", func() bool {
		return outboxState(t, st, ev.ID.String()) == "failed"
	})
	d := deliveries(t, st, ev.ID.String())[0]
	if !d.Failed || d.Attempts != 3 {
		t.Errorf("delivery = %+v, want failed after 3 attempts", d)
	}
	if !strings.Contains(d.LastError, "connection refused") {
		t.Errorf("last_error = %q, want the connection error", d.LastError)
	}
	if strings.Contains(d.LastError, "SECRETPATH") {
		t.Errorf("last_error %q contains the secret URL", d.LastError)
	}
	if got := testutil.ToFloat64(r.d.metrics.failed.WithLabelValues("dead")); got != 1 {
		t.Errorf("changesync_notify_failed_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.d.metrics.retries.WithLabelValues("dead")); got != 2 {
		t.Errorf("changesync_notify_retries_total = %v, want 2", got)
	}

	logs := r.logs.String()
	if n := strings.Count(logs, "notify delivery failed after the last attempt"); n != 1 {
		t.Errorf("final failure logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"destination":"dead"`) {
		t.Errorf("log lacks the destination:\n%s", logs)
	}
	for _, secret := range []string{"SECRETPATH", testSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains the secret %q:\n%s", secret, logs)
		}
	}
}

func TestDispatcherOutboxDepth(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, func(int, *http.Request) int { return http.StatusBadGateway })
	cfg := baseConfig()
	cfg.Retry.MaxAttempts = 100
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, "*")}
	enqueue(t, st, sampleEvents()[:4]...)
	r := startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "outbox depth 4", func() bool {
		return testutil.ToFloat64(r.d.metrics.depth) == 4 &&
			testutil.ToFloat64(r.d.metrics.pending.WithLabelValues("hook")) == 4
	})
	problems, err := testutil.GatherAndLint(r.reg)
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestDispatchersDoNotDoubleSend(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, func(int, *http.Request) int {
		time.Sleep(5 * time.Millisecond) // widen the window in which both could claim a row
		return http.StatusOK
	})
	cfg := baseConfig()
	cfg.PollInterval = 10 * time.Millisecond
	cfg.BatchSize = 5
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, "*")}

	var events []Event
	for i := range 40 {
		events = append(events, Event{Type: EventSync, Table: "crm.customers", RowKey: fmt.Sprint(i)})
	}
	events = enqueue(t, st, events...)
	startDispatcher(t, st, cfg)
	startDispatcher(t, reopen(t, st), cfg)

	waitFor(t, 20*time.Second, "every event", func() bool { return hook.count() >= len(events) })
	time.Sleep(10 * cfg.PollInterval)
	counts := countByID(t, hook.received())
	for _, ev := range events {
		if counts[ev.ID.String()] != 1 {
			t.Errorf("event %s sent %d times, want 1", ev.ID, counts[ev.ID.String()])
		}
	}
	if got := hook.count(); got != len(events) {
		t.Errorf("requests = %d, want %d", got, len(events))
	}
}

func TestDispatcherRoutesByTypeAndTable(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	cfg := baseConfig()
	wh := webhookConfig("crm-holds", hook.URL, EventHold)
	wh.Tables = []string{"crm.*"}
	cfg.Webhooks = []Webhook{wh}
	events := enqueue(t, st,
		Event{Type: EventHold, Table: "crm.customers", RowKey: "1"},
		Event{Type: EventHold, Table: "sales.orders", RowKey: "2"},
		Event{Type: EventSync, Table: "crm.customers", RowKey: "3"},
		Event{Type: EventHold, Table: "other.x", TargetTable: "crm.mirror", RowKey: "4"},
	)
	startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "every outbox row to be finished", func() bool {
		for _, ev := range events {
			if outboxState(t, st, ev.ID.String()) == "pending" {
				return false
			}
		}
		return true
	})
	time.Sleep(5 * cfg.PollInterval)
	var keys []string
	for _, ev := range webhookBodies(t, hook.received()) {
		keys = append(keys, ev.RowKey)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"1", "4"}) {
		t.Errorf("delivered row keys = %v, want [1 4]", keys)
	}
	if d := deliveries(t, st, events[1].ID.String()); len(d) != 0 {
		t.Errorf("event of another table has deliveries %+v, want none", d)
	}
}

func TestDispatcherGivesUpRemovedDestination(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	cfg := baseConfig()
	cfg.Webhooks = []Webhook{webhookConfig("old", "http://127.0.0.1:1/unused", "*")}
	ev := enqueue(t, st, sampleEvents()[0])[0]

	// Route the event to "old" without sending it.
	d, err := NewDispatcher(st, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.routeBatch(testContext(t)); err != nil {
		t.Fatalf("route: %v", err)
	}

	cfg.Webhooks = []Webhook{webhookConfig("new", hook.URL, "*")}
	r := startDispatcher(t, st, cfg)
	waitFor(t, 10*time.Second, "the outbox row to be finished", func() bool {
		return outboxState(t, st, ev.ID.String()) != "pending"
	})
	got := deliveries(t, st, ev.ID.String())
	if len(got) != 1 || got[0].Destination != "old" || !got[0].Failed {
		t.Errorf("deliveries = %+v, want the one to old failed", got)
	}
	if !strings.Contains(r.logs.String(), "no longer configured") {
		t.Errorf("log does not mention the removed destination:\n%s", r.logs.String())
	}
	if hook.count() != 0 {
		t.Errorf("new destination got %d requests for an event routed before it existed, want 0", hook.count())
	}
}

func TestDispatcherGivesUpUndecodablePayload(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	cfg := baseConfig()
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, "*")}
	id := uuid.New()
	_, err := st.Pool.Exec(testContext(t), `INSERT INTO outbox (id, event_type, payload) VALUES ($1, 'sync', '[1, 2]')`, id)
	if err != nil {
		t.Fatal(err)
	}
	r := startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "the row to be given up", func() bool {
		return outboxState(t, st, id.String()) == "failed"
	})
	if d := deliveries(t, st, id.String()); len(d) != 1 || !strings.Contains(d[0].LastError, "decode outbox payload") {
		t.Errorf("deliveries = %+v, want one failed with the decoding error", d)
	}
	if hook.count() != 0 {
		t.Errorf("receiver got %d requests, want 0", hook.count())
	}
	if got := testutil.ToFloat64(r.d.metrics.failed.WithLabelValues("hook")); got != 1 {
		t.Errorf("changesync_notify_failed_total = %v, want 1", got)
	}
}

func TestEnqueueIsIdempotent(t *testing.T) {
	st := newStore(t)
	id := uuid.New()
	enqueue(t, st, Event{ID: id, Type: EventSync})
	enqueue(t, st, Event{ID: id, Type: EventSync})

	var n int
	if err := st.Pool.QueryRow(testContext(t), `SELECT count(*) FROM outbox WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("outbox rows = %d, want 1", n)
	}
}

func TestEnqueueRollsBackWithTransaction(t *testing.T) {
	st := newStore(t)
	ctx := testContext(t)
	tx, err := st.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enqueue(ctx, tx, Event{Type: EventHold}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	var n int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("outbox rows after rollback = %d, want 0", n)
	}
}

func TestEnqueueRejectsUnknownType(t *testing.T) {
	st := newStore(t)
	ctx := testContext(t)
	tx, err := st.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)

	_, err = Enqueue(ctx, tx, Event{Type: "synced"})
	if err == nil || !strings.Contains(err.Error(), `unknown event type "synced"`) {
		t.Errorf("Enqueue error = %v, want unknown event type", err)
	}
}
