package notify

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"
)

// hidden replaces secrets in text shown to people.
const hidden = "[hidden]"

// Secret is a value read from the environment, such as a token, a password or a webhook
// URL with a token in its path. Printing, logging or encoding it shows [hidden].
type Secret string

// String returns [hidden] for a set secret and the empty string otherwise.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return hidden
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue hides the secret from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the secret from encoders such as encoding/json.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value returns the secret itself, for the one place that sends it.
func (s Secret) Value() string { return string(s) }

// SendError is the error of one failed send, with the secrets of the destination removed
// from its text so that it can be logged and stored in outbox_deliveries.last_error.
type SendError struct {
	msg string
	// RetryAfter is the delay the receiver asked for, from a Retry-After header. It is 0 when
	// it asked for none.
	RetryAfter time.Duration
	// Timeout reports whether the send ran out of time.
	Timeout bool
}

func (e *SendError) Error() string { return e.msg }

// scrub turns err into a *SendError whose text has every non-empty secret replaced by
// [hidden]. The original error is not kept, because its text may contain the secrets.
func scrub(err error, secrets ...Secret) *SendError {
	var sendErr *SendError
	if errors.As(err, &sendErr) {
		return &SendError{msg: scrubText(sendErr.msg, secrets), RetryAfter: sendErr.RetryAfter, Timeout: sendErr.Timeout}
	}
	return &SendError{msg: scrubText(err.Error(), secrets), Timeout: isTimeout(err)}
}

func scrubText(text string, secrets []Secret) string {
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, string(s), hidden)
		}
	}
	return text
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
