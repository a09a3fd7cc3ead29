package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// verifyStandardWebhook checks a request the way a receiver following the Standard
// Webhooks convention does, written from the convention and not from the sender's code:
// HMAC-SHA256 over "id.timestamp.body" with the base64-decoded part of the secret after
// whsec_, base64-encoded, in one of the space-separated "v1,<signature>" entries.
func verifyStandardWebhook(secret string, header http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(header.Get("webhook-id") + "." + header.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := mac.Sum(nil)

	for _, entry := range strings.Fields(header.Get("webhook-signature")) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func TestWebhookSignatureVerifies(t *testing.T) {
	st := newStore(t)
	hook := newReceiver(t, nil)
	cfg := baseConfig()
	cfg.Webhooks = []Webhook{webhookConfig("hook", hook.URL, "*")}
	events := enqueue(t, st, sampleEvents()...)
	startDispatcher(t, st, cfg)

	waitFor(t, 10*time.Second, "every event", func() bool { return hook.count() >= len(events) })
	for _, req := range hook.received() {
		if !verifyStandardWebhook(testSecret, req.Header, req.Body) {
			t.Errorf("signature %q does not verify for id %s", req.Header.Get("webhook-signature"),
				req.Header.Get("webhook-id"))
		}

		tampered := append([]byte(nil), req.Body...)
		tampered[len(tampered)-2] ^= 1
		if verifyStandardWebhook(testSecret, req.Header, tampered) {
			t.Error("signature verifies for a changed body")
		}
		other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret of 32 bytes......"))
		if verifyStandardWebhook(other, req.Header, req.Body) {
			t.Error("signature verifies with another secret")
		}

		ts, err := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("webhook-timestamp = %q, want the current Unix time in seconds", req.Header.Get("webhook-timestamp"))
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		ev := webhookBodies(t, []request{req})[0]
		if ev.ID.String() != req.Header.Get("webhook-id") {
			t.Errorf("body id %s differs from webhook-id %s", ev.ID, req.Header.Get("webhook-id"))
		}
		if ev.Version != SchemaVersion {
			t.Errorf("version = %d, want %d", ev.Version, SchemaVersion)
		}
	}
}

func TestWebhookRawSecret(t *testing.T) {
	hook := newReceiver(t, nil)
	const raw = "a raw secret without the prefix"
	w := webhookConfig("hook", hook.URL, "*")
	w.Secret = raw
	s, err := newWebhookSender(&w, newHTTPClient(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sendEvent(context.Background(), &Event{ID: uuid.New(), Type: EventSync}); err != nil {
		t.Fatalf("send: %v", err)
	}

	req := hook.received()[0]
	mac := hmac.New(sha256.New, []byte(raw))
	mac.Write([]byte(req.Header.Get("webhook-id") + "." + req.Header.Get("webhook-timestamp") + "."))
	mac.Write(req.Body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := req.Header.Get("webhook-signature"); got != want {
		t.Errorf("webhook-signature = %q, want %q", got, want)
	}
}

func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	target := newReceiver(t, nil)
	hook := newReceiver(t, func(int, *http.Request) int { return http.StatusTemporaryRedirect })
	hook.Config.Handler = http.RedirectHandler(target.URL, http.StatusTemporaryRedirect)
	w := webhookConfig("hook", hook.URL, "*")
	s, err := newWebhookSender(&w, newHTTPClient(time.Second))
	if err != nil {
		t.Fatal(err)
	}

	err = s.sendEvent(context.Background(), &Event{ID: uuid.New(), Type: EventSync})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("send error = %v, want the 307 status", err)
	}
	if target.count() != 0 {
		t.Errorf("redirect target got %d requests, want 0", target.count())
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	hook := newReceiver(t, nil)
	hook.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	w := webhookConfig("hook", hook.URL, "*")
	s, err := newWebhookSender(&w, newHTTPClient(time.Second))
	if err != nil {
		t.Fatal(err)
	}

	err = s.sendEvent(context.Background(), &Event{ID: uuid.New(), Type: EventSync})
	d := &Dispatcher{cfg: baseConfig()}
	if got := d.retryDelay(1, err); got != 2*time.Minute {
		t.Errorf("retry delay = %s, want the 2m the receiver asked for", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		want   time.Duration
	}{
		{name: "empty", header: "", want: 0},
		{name: "seconds", header: "30", want: 30 * time.Second},
		{name: "http date", header: "Sat, 01 Mar 2025 12:01:00 GMT", want: time.Minute},
		{name: "date in the past", header: "Sat, 01 Mar 2025 11:00:00 GMT", want: 0},
		{name: "capped", header: "86400", want: maxRetryAfter},
		{name: "garbage", header: "soon", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.header, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
}

func TestRetryDelayGrowsWithJitter(t *testing.T) {
	d := &Dispatcher{cfg: Config{Retry: Retry{
		InitialInterval: time.Second, MaxInterval: 10 * time.Second, Multiplier: 2, Jitter: 0.5,
	}}}
	tests := []struct {
		failures int
		base     time.Duration
	}{
		{failures: 1, base: time.Second},
		{failures: 2, base: 2 * time.Second},
		{failures: 3, base: 4 * time.Second},
		{failures: 5, base: 10 * time.Second}, // 16s capped at max_interval
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 50 {
			got := d.retryDelay(tt.failures, nil)
			seen[got] = true
			if got < tt.base/2 || got > tt.base*3/2+time.Nanosecond {
				t.Errorf("delay after %d failures = %s, want within 50%% of %s", tt.failures, got, tt.base)
			}
		}
		if len(seen) < 2 {
			t.Errorf("delay after %d failures is always %v, want jitter", tt.failures, seen)
		}
	}
}
