package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/store/dbgen"
)

// maxDigestEvents caps the events one digest covers. Events beyond it wait for the next
// digest.
const maxDigestEvents = 1000

// recordTimeout bounds recording the outcome of a send after the dispatcher was told to
// stop, so that an acknowledged send is still marked delivered.
const recordTimeout = 10 * time.Second

// claimed is a delivery locked for sending, with its decoded event.
type claimed struct {
	row       dbgen.ClaimDeliveriesRow
	ev        Event
	decodeErr error // set when the payload is not a valid event, which is given up unsent
}

// outcome is what happened to the deliveries of one send, for metrics and logs after
// the transaction commits.
type outcome struct {
	delivered []*claimed
	retried   []*claimed
	failed    []*claimed
	broken    []*claimed
	err       error
	duration  time.Duration
}

// deliverLoop sends the due deliveries of one destination until ctx is done: one event
// at a time, or one digest per interval. After a failed send it waits for the next poll
// before it tries the next event, so a destination that is down is not hammered.
//
// TODO: one send at a time per destination bounds its throughput by the receiver's
// latency. Several claiming loops per destination would lift that if volume needs it.
func (d *Dispatcher) deliverLoop(ctx context.Context, dest *destination) {
	errs := newErrorLog(d.logger.With(slog.String(logDestination, dest.Name)), "notify delivery")
	for {
		if dest.Digest != nil {
			if !sleep(ctx, dest.Digest.Interval, nil) {
				return
			}
			_, err := d.deliverBatch(ctx, dest, maxDigestEvents)
			errs.record(ctx, err)
			continue
		}

		n, err := d.deliverBatch(ctx, dest, 1)
		errs.record(ctx, err)
		if (n == 0 || err != nil || dest.down) && !sleep(ctx, d.cfg.PollInterval, dest.wake) {
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// deliverBatch claims up to limit due deliveries of the destination, sends them as one
// event or one digest, and records the outcome in the same transaction. The delivery
// rows stay locked until then, so no other dispatcher sends them meanwhile. It returns
// the number of deliveries claimed.
func (d *Dispatcher) deliverBatch(ctx context.Context, dest *destination, limit int) (int, error) {
	tx, err := d.store.Pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin delivery transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	q := dbgen.New(tx)
	rows, err := q.ClaimDeliveries(ctx, dbgen.ClaimDeliveriesParams{
		Destination: dest.Name, MaxRows: int32(limit),
	})
	if err != nil {
		return 0, fmt.Errorf("claim deliveries: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}

	out := d.send(ctx, dest, decodeClaims(rows))
	if ctx.Err() != nil {
		// Stopping: the send was cut short and is not counted as an attempt. The rows
		// are sent again after a restart.
		return len(rows), nil
	}

	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := d.record(recordCtx, q, dest, out); err != nil {
		return len(rows), err
	}
	if err := tx.Commit(recordCtx); err != nil {
		return len(rows), fmt.Errorf("commit delivery outcome: %w", err)
	}

	d.report(dest, out)
	return len(rows), nil
}

func decodeClaims(rows []dbgen.ClaimDeliveriesRow) []*claimed {
	claims := make([]*claimed, len(rows))
	for i, row := range rows {
		c := &claimed{row: row}
		if err := json.Unmarshal(row.Payload, &c.ev); err != nil {
			c.ev = Event{ID: row.OutboxID, Type: EventType(row.EventType)}
			c.decodeErr = fmt.Errorf("decode outbox payload: %w", err)
		}
		claims[i] = c
	}
	return claims
}

// send delivers the claimed events, one event or a digest, and sorts them by outcome.
// Events whose payload did not decode are given up without sending.
func (d *Dispatcher) send(ctx context.Context, dest *destination, claims []*claimed) *outcome {
	out := &outcome{}
	var good []*claimed
	for _, c := range claims {
		if c.decodeErr != nil {
			out.broken = append(out.broken, c)
			continue
		}
		good = append(good, c)
	}
	if len(good) == 0 {
		return out
	}

	sendCtx, cancel := context.WithTimeout(ctx, dest.Timeout)
	defer cancel()
	start := time.Now()
	if dest.Digest != nil {
		events := make([]Event, len(good))
		for i, c := range good {
			events[i] = c.ev
		}
		out.err = dest.sender.sendDigest(sendCtx, newDigest(dest.Name, events, dest.Digest.Sample))
	} else {
		out.err = dest.sender.sendEvent(sendCtx, &good[0].ev)
	}
	out.duration = time.Since(start)
	out.err = explainTimeout(out.err, dest.Timeout)

	if out.err == nil {
		out.delivered = good
		return out
	}
	for _, c := range good {
		if int(c.row.Attempts)+1 >= d.cfg.Retry.MaxAttempts {
			out.failed = append(out.failed, c)
		} else {
			out.retried = append(out.retried, c)
		}
	}
	return out
}

// record writes the outcome of a send to the delivery rows.
func (d *Dispatcher) record(ctx context.Context, q *dbgen.Queries, dest *destination, out *outcome) error {
	if len(out.delivered) > 0 {
		err := q.MarkDelivered(ctx, dbgen.MarkDeliveredParams{Destination: dest.Name, Batch: ids(out.delivered)})
		if err != nil {
			return fmt.Errorf("mark deliveries sent: %w", err)
		}
	}

	lastError := pgtype.Text{}
	if out.err != nil {
		lastError = pgtype.Text{String: out.err.Error(), Valid: true}
	}
	if len(out.failed) > 0 {
		err := q.MarkDeliveryFailed(ctx, dbgen.MarkDeliveryFailedParams{
			Destination: dest.Name, Batch: ids(out.failed), LastError: lastError,
		})
		if err != nil {
			return fmt.Errorf("mark deliveries failed: %w", err)
		}
	}

	for _, c := range out.broken {
		err := q.MarkDeliveryFailed(ctx, dbgen.MarkDeliveryFailedParams{
			Destination: dest.Name, Batch: ids([]*claimed{c}),
			LastError: pgtype.Text{String: c.decodeErr.Error(), Valid: true},
		})
		if err != nil {
			return fmt.Errorf("mark undecodable delivery failed: %w", err)
		}
	}

	// Each group of rows with the same number of attempts gets its own delay.
	byAttempts := map[int32][]*claimed{}
	for _, c := range out.retried {
		byAttempts[c.row.Attempts] = append(byAttempts[c.row.Attempts], c)
	}
	for attempts, group := range byAttempts {
		delay := d.retryDelay(int(attempts)+1, out.err)
		err := q.ScheduleRetry(ctx, dbgen.ScheduleRetryParams{
			Destination: dest.Name, Batch: ids(group), LastError: lastError, DelaySeconds: delay.Seconds(),
		})
		if err != nil {
			return fmt.Errorf("schedule retry of deliveries: %w", err)
		}
	}
	return nil
}

// retryDelay returns the delay before the next send after the given number of failed
// sends: exponential backoff with jitter, or the receiver's Retry-After when longer.
func (d *Dispatcher) retryDelay(failures int, err error) time.Duration {
	r := d.cfg.Retry
	b := &backoff.ExponentialBackOff{
		InitialInterval:     r.InitialInterval,
		RandomizationFactor: r.Jitter,
		Multiplier:          r.Multiplier,
		MaxInterval:         r.MaxInterval,
	}
	b.Reset()

	var delay time.Duration
	for range failures {
		delay = b.NextBackOff()
	}

	var sendErr *SendError
	if errors.As(err, &sendErr) {
		delay = max(delay, sendErr.RetryAfter)
	}
	return delay
}

// report updates the metrics and logs the outcome of a committed send: a destination
// going down or coming back, and each delivery given up, once.
func (d *Dispatcher) report(dest *destination, out *outcome) {
	d.observe(dest, out)
	logger := d.logger.With(slog.String(logDestination, dest.Name))

	switch {
	case len(out.delivered) > 0 && dest.down:
		dest.down = false
		logger.Info("notify destination is reachable again")
	case len(out.retried) > 0 && !dest.down:
		dest.down = true
		logger.Warn("notify send failed; retrying with backoff", slog.String(logError, out.err.Error()),
			slog.Int(logEvents, len(out.retried)))
	}

	for _, c := range out.failed {
		logger.Error("notify delivery failed after the last attempt",
			slog.String(logEventID, c.ev.ID.String()), slog.String(logEventType, string(c.ev.Type)),
			slog.Int(logAttempts, int(c.row.Attempts)+1), slog.String(logError, out.err.Error()))
	}
	for _, c := range out.broken {
		logger.Error("notify delivery failed: the outbox payload is not a valid event",
			slog.String(logEventID, c.ev.ID.String()), slog.String(logEventType, string(c.ev.Type)),
			slog.String(logError, c.decodeErr.Error()))
	}
}

func (d *Dispatcher) observe(dest *destination, out *outcome) {
	m := d.metrics
	for _, c := range out.delivered {
		m.delivered.WithLabelValues(dest.Name, string(c.ev.Type)).Inc()
	}
	m.retries.WithLabelValues(dest.Name).Add(float64(len(out.retried)))
	m.failed.WithLabelValues(dest.Name).Add(float64(len(out.failed) + len(out.broken)))

	if out.duration > 0 {
		result := "ok"
		if out.err != nil {
			result = "error"
		}
		m.sendSeconds.WithLabelValues(dest.Name, result).Observe(out.duration.Seconds())
	}
}

// explainTimeout prefixes the error of a send that ran out of time with the timeout.
func explainTimeout(err error, timeout time.Duration) error {
	var sendErr *SendError
	if errors.As(err, &sendErr) && sendErr.Timeout {
		return &SendError{
			msg:        fmt.Sprintf("send timed out after %s: %s", timeout, sendErr.msg),
			RetryAfter: sendErr.RetryAfter, Timeout: true,
		}
	}
	return err
}

func ids(claims []*claimed) []uuid.UUID {
	out := make([]uuid.UUID, len(claims))
	for i, c := range claims {
		out[i] = c.row.OutboxID
	}
	return out
}
