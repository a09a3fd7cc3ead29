package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// Log field names.
const (
	logDestination = "destination"
	logEventID     = "event_id"
	logEventType   = "event_type"
	logEvents      = "events"
	logAttempts    = "attempts"
	logError       = "error"
)

// sender delivers to one destination. A non-nil error is a failed send, retried later.
// Errors must not contain the destination's secrets.
type sender interface {
	sendEvent(ctx context.Context, ev *Event) error
	sendDigest(ctx context.Context, d *Digest) error
}

// destination is one configured destination with its sender.
type destination struct {
	Destination
	sender sender
	wake   chan struct{} // signalled when new deliveries were routed
	down   bool          // set while sends fail, used by the destination's own loop only
}

// Dispatcher routes the events of the outbox to the destinations that want them and
// delivers them, retrying failed sends with backoff. Several dispatchers may run against
// one outbox: each delivery row is locked while it is sent, so only one of them sends it.
type Dispatcher struct {
	store        *store.Store
	cfg          Config
	destinations []*destination
	metrics      *metrics
	logger       *slog.Logger
}

// Option changes an optional setting of a Dispatcher.
type Option func(*Dispatcher)

// WithLogger sets the logger. Without it, nothing is logged.
func WithLogger(logger *slog.Logger) Option {
	return func(d *Dispatcher) { d.logger = logger }
}

// NewDispatcher returns a dispatcher for the outbox of st with the destinations of cfg,
// which must come from ParseConfig. Its metrics are registered with reg unless reg is
// nil.
func NewDispatcher(st *store.Store, cfg Config, reg prometheus.Registerer, opts ...Option) (*Dispatcher, error) {
	d := &Dispatcher{store: st, cfg: cfg, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(d)
	}

	if err := d.addDestinations(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	d.metrics = m
	return d, nil
}

func (d *Dispatcher) addDestinations() error {
	add := func(settings Destination, s sender) {
		d.destinations = append(d.destinations, &destination{
			Destination: settings, sender: s, wake: make(chan struct{}, 1),
		})
	}

	for i := range d.cfg.Slack {
		s := &d.cfg.Slack[i]
		add(s.Destination, newSlackSender(s, newHTTPClient(s.Timeout)))
	}
	for i := range d.cfg.Email {
		s, err := newEmailSender(&d.cfg.Email[i])
		if err != nil {
			return err
		}
		add(d.cfg.Email[i].Destination, s)
	}
	for i := range d.cfg.Webhooks {
		w := &d.cfg.Webhooks[i]
		s, err := newWebhookSender(w, newHTTPClient(w.Timeout))
		if err != nil {
			return err
		}
		add(w.Destination, s)
	}
	return nil
}

// Run routes and delivers until ctx is done, then returns nil after every goroutine it
// started has ended. Database errors are logged and retried at the next poll, and Run
// returns an error only when the first database statement fails.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.failRemovedDestinations(ctx); err != nil {
		return err
	}
	d.logger.Info("notify dispatcher started", slog.Int("destinations", len(d.destinations)))

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		d.routeLoop(ctx)
		return nil
	})
	for _, dest := range d.destinations {
		g.Go(func() error {
			d.deliverLoop(ctx, dest)
			return nil
		})
	}
	err := g.Wait()

	d.logger.Info("notify dispatcher stopped")
	return err
}

// failRemovedDestinations gives up on the pending deliveries of destinations that are no
// longer configured.
func (d *Dispatcher) failRemovedDestinations(ctx context.Context) error {
	names := make([]string, len(d.destinations))
	for i, dest := range d.destinations {
		names[i] = dest.Name
	}

	n, err := dbgen.New(d.store.Pool).FailRemovedDestinations(ctx, names)
	if err != nil {
		return fmt.Errorf("give up deliveries of removed notify destinations: %w", err)
	}
	if n > 0 {
		d.logger.Warn("gave up deliveries of notify destinations that are no longer configured",
			slog.Int64("deliveries", n))
	}
	return nil
}

// routeLoop routes new outbox events, finishes the events whose deliveries are all done
// and updates the depth gauges, once per poll interval.
func (d *Dispatcher) routeLoop(ctx context.Context) {
	errs := newErrorLog(d.logger, "notify routing")
	for {
		err := d.routeAll(ctx)
		if err == nil {
			err = d.finishAndMeasure(ctx)
		}
		errs.record(ctx, err)

		if !sleep(ctx, d.cfg.PollInterval, nil) {
			return
		}
	}
}

// routeAll routes batches until no unrouted event is left, and wakes the destinations.
func (d *Dispatcher) routeAll(ctx context.Context) error {
	for {
		n, err := d.routeBatch(ctx)
		if n > 0 {
			for _, dest := range d.destinations {
				select {
				case dest.wake <- struct{}{}:
				default:
				}
			}
		}
		if err != nil || n < d.cfg.BatchSize {
			return err
		}
	}
}

// routeBatch creates the delivery rows of up to BatchSize unrouted events in one
// transaction, and returns how many events it routed.
func (d *Dispatcher) routeBatch(ctx context.Context) (int, error) {
	var routed int
	err := d.store.InTx(ctx, func(_ pgx.Tx, q *dbgen.Queries) error {
		rows, err := q.LockUnroutedOutbox(ctx, int32(d.cfg.BatchSize))
		if err != nil {
			return fmt.Errorf("lock unrouted outbox events: %w", err)
		}

		for _, row := range rows {
			if err := d.routeEvent(ctx, q, row); err != nil {
				return err
			}
		}
		routed = len(rows)
		return nil
	})
	return routed, err
}

func (d *Dispatcher) routeEvent(ctx context.Context, q *dbgen.Queries, row dbgen.LockUnroutedOutboxRow) error {
	// A payload that does not decode is routed on its type alone. Sending it then fails
	// and gives up, which leaves a trace in outbox_deliveries.
	ev := Event{Type: EventType(row.EventType)}
	if json.Unmarshal(row.Payload, &ev) != nil {
		ev = Event{Type: EventType(row.EventType)}
	}

	var names []string
	for _, dest := range d.destinations {
		if dest.wants(&ev) {
			names = append(names, dest.Name)
		}
	}

	if len(names) > 0 {
		err := q.InsertDeliveries(ctx, dbgen.InsertDeliveriesParams{OutboxID: row.ID, Destinations: names})
		if err != nil {
			return fmt.Errorf("route outbox event %s: %w", row.ID, err)
		}
	}
	err := q.MarkOutboxRouted(ctx, dbgen.MarkOutboxRoutedParams{ID: row.ID, HasDestinations: len(names) > 0})
	if err != nil {
		return fmt.Errorf("mark outbox event %s routed: %w", row.ID, err)
	}
	return nil
}

// finishAndMeasure marks the events whose deliveries are all done and sets the gauges.
func (d *Dispatcher) finishAndMeasure(ctx context.Context) error {
	q := dbgen.New(d.store.Pool)
	if _, err := q.FinishOutbox(ctx); err != nil {
		return fmt.Errorf("finish delivered outbox events: %w", err)
	}

	depth, err := q.CountPendingOutbox(ctx)
	if err != nil {
		return fmt.Errorf("count pending outbox events: %w", err)
	}
	d.metrics.depth.Set(float64(depth))

	counts, err := q.CountPendingDeliveries(ctx)
	if err != nil {
		return fmt.Errorf("count pending deliveries: %w", err)
	}
	pending := map[string]int64{}
	for _, c := range counts {
		pending[c.Destination] = c.Pending
	}
	for _, dest := range d.destinations {
		d.metrics.pending.WithLabelValues(dest.Name).Set(float64(pending[dest.Name]))
	}
	return nil
}

// sleep waits for the duration, a signal on wake, or the end of ctx, and reports whether
// ctx is still live.
func sleep(ctx context.Context, duration time.Duration, wake <-chan struct{}) bool {
	timer := time.NewTimer(duration)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
	case <-wake:
	}
	return true
}

// errorLog logs the errors of one loop: the first error after a success at once, then
// at most one line per errorLogInterval with the count of errors in between.
type errorLog struct {
	logger     *slog.Logger
	loop       string
	last       time.Time
	suppressed int
}

const errorLogInterval = 30 * time.Second

func newErrorLog(logger *slog.Logger, loop string) *errorLog {
	return &errorLog{logger: logger, loop: loop}
}

func (l *errorLog) record(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		l.last, l.suppressed = time.Time{}, 0
		return
	}
	if !l.last.IsZero() && time.Since(l.last) < errorLogInterval {
		l.suppressed++
		return
	}
	l.logger.Error(l.loop+" failed; retrying at the next poll", slog.String(logError, err.Error()),
		slog.Int("errors_since_last_log", l.suppressed))
	l.last, l.suppressed = time.Now(), 0
}
