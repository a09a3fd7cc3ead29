package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// The headers of the Standard Webhooks convention.
const (
	headerWebhookID        = "webhook-id"
	headerWebhookTimestamp = "webhook-timestamp"
	headerWebhookSignature = "webhook-signature"
)

// maxRetryAfter caps the delay a receiver can ask for with Retry-After.
const maxRetryAfter = time.Hour

// webhookSender posts signed JSON to one receiver.
//
// TODO: one secret per webhook, so rotating it breaks verification until the receiver
// switches. Rotation needs a second secret and two v1 entries in webhook-signature.
type webhookSender struct {
	url    Secret
	secret Secret
	key    []byte
	client *http.Client
	now    func() time.Time
}

func newWebhookSender(w *Webhook, client *http.Client) (*webhookSender, error) {
	key, err := webhookKey(w.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
	}
	return &webhookSender{url: w.ResolvedURL, secret: w.Secret, key: key, client: client, now: time.Now}, nil
}

func (w *webhookSender) sendEvent(ctx context.Context, ev *Event) error {
	return w.post(ctx, ev.ID, ev)
}

func (w *webhookSender) sendDigest(ctx context.Context, d *Digest) error {
	return w.post(ctx, d.ID, d)
}

// post sends the JSON of payload with the Standard Webhooks headers. The id is the same
// on every attempt, the timestamp and signature are those of this attempt.
func (w *webhookSender) post(ctx context.Context, id uuid.UUID, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode webhook body: %w", err)
	}

	timestamp := strconv.FormatInt(w.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.Value(), bytes.NewReader(body))
	if err != nil {
		return scrub(err, w.url, w.secret)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "changesync-notify")
	req.Header.Set(headerWebhookID, id.String())
	req.Header.Set(headerWebhookTimestamp, timestamp)
	req.Header.Set(headerWebhookSignature, "v1,"+signWebhook(w.key, id.String(), timestamp, body))

	resp, err := w.client.Do(req)
	if err != nil {
		return scrub(err, w.url, w.secret)
	}
	// Reading the rest of the body lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &SendError{
		msg:        "receiver returned HTTP " + resp.Status,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), w.now()),
	}
}

// signWebhook returns the base64 HMAC-SHA256 of "id.timestamp.body" under key.
func signWebhook(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP date, capped at
// maxRetryAfter. It returns 0 for an empty or invalid header.
func parseRetryAfter(header string, now time.Time) time.Duration {
	if header == "" {
		return 0
	}
	var delay time.Duration
	if seconds, err := strconv.Atoi(header); err == nil {
		delay = time.Duration(seconds) * time.Second
	} else if at, err := http.ParseTime(header); err == nil {
		delay = at.Sub(now)
	}
	return min(max(delay, 0), maxRetryAfter)
}

// newHTTPClient returns the client of one HTTP destination. It does not follow
// redirects, so a receiver cannot send the signed body on to another host.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
