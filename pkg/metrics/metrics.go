// Package metrics defines the Prometheus metrics of a changesync pipeline. The pipeline
// updates the counters and histograms as batches commit. The gauges of the source slot
// and of held changes are read from the databases when they are scraped.
package metrics

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/datasense/changesync/pkg/capture"
)

// scrapeTimeout bounds the queries a scrape runs against the source and the target.
const scrapeTimeout = 2 * time.Second

// Pipeline holds the metrics that the pipeline updates itself.
type Pipeline struct {
	changes      *prometheus.CounterVec
	batchSize    prometheus.Histogram
	batchSeconds prometheus.Histogram
	lagSeconds   prometheus.GaugeFunc
	snapshotRows *prometheus.GaugeVec

	lastLag  atomic.Uint64 // float64 bits of the lag of the last applied transaction
	caughtUp atomic.Pointer[func() bool]
}

// NewPipeline registers the pipeline's metrics with reg, labelled with the pipeline name.
func NewPipeline(reg prometheus.Registerer, pipeline string) (*Pipeline, error) {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": pipeline}, reg)
	m := &Pipeline{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "changesync_changes_total",
			Help: "Source row changes recorded, by source table and status (synced, held, blocked, " +
				"skipped, rejected, failed).",
		}, []string{"table", "status"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "changesync_apply_batch_changes",
			Help:    "Row changes per committed target transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "changesync_apply_batch_seconds",
			Help:    "Time to apply and commit one target transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		snapshotRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "changesync_snapshot_rows",
			Help: "Rows of the initial snapshot copy of a table: copied so far, and the planner's estimate.",
		}, []string{"table", "kind"}),
	}
	m.lagSeconds = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "changesync_lag_seconds",
		Help: "Time from the source commit to the target commit of the last applied transaction; " +
			"0 while everything the source sent is applied.",
	}, m.lag)
	for _, c := range []prometheus.Collector{m.changes, m.batchSize, m.batchSeconds, m.lagSeconds, m.snapshotRows} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Change counts n changes of table that ended with status.
func (m *Pipeline) Change(table, status string, n int) {
	if m != nil {
		m.changes.WithLabelValues(table, status).Add(float64(n))
	}
}

// Batch records a committed target transaction of changes row changes that took
// elapsed, whose last source transaction committed at sourceCommit.
func (m *Pipeline) Batch(changes int, elapsed time.Duration, sourceCommit time.Time) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(changes))
	m.batchSeconds.Observe(elapsed.Seconds())
	if !sourceCommit.IsZero() {
		m.lastLag.Store(math.Float64bits(max(time.Since(sourceCommit).Seconds(), 0)))
	}
}

// SetCaughtUp sets the function that reports whether everything the source sent is
// applied. While it returns true the lag is 0, so that the lag of the last transaction
// does not stay on the gauge while the source is idle.
func (m *Pipeline) SetCaughtUp(caughtUp func() bool) {
	if m != nil {
		m.caughtUp.Store(&caughtUp)
	}
}

// lag returns the value of changesync_lag_seconds.
func (m *Pipeline) lag() float64 {
	if f := m.caughtUp.Load(); f != nil && (*f)() {
		return 0
	}
	return math.Float64frombits(m.lastLag.Load())
}

// CaughtUp reports whether a reader has confirmed everything up to the source's WAL end
// of its last message: every transaction it sent is applied, and the heartbeat confirms
// the WAL of other tables and databases.
func CaughtUp(r *capture.Reader) func() bool {
	return func() bool {
		st := r.Stats()
		return st.ServerWALEnd > 0 && st.Confirmed >= st.ServerWALEnd
	}
}

// LLMObserver registers the LLM reviewer's metrics with reg and returns the function
// that records one request.
func LLMObserver(reg prometheus.Registerer, pipeline string) (func(string, time.Duration), error) {
	labels := prometheus.Labels{"pipeline": pipeline}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "changesync_llm_requests_total", Help: "LLM review requests by outcome: ok or error.",
		ConstLabels: labels,
	}, []string{"outcome"})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "changesync_llm_request_seconds", Help: "Duration of LLM review requests.",
		ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
	})
	for _, c := range []prometheus.Collector{calls, seconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return func(outcome string, elapsed time.Duration) {
		calls.WithLabelValues(outcome).Inc()
		seconds.Observe(elapsed.Seconds())
	}, nil
}

// UndoOutcomes returns the counter of undo requests by outcome, registered with reg.
func UndoOutcomes(reg prometheus.Registerer, pipeline string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "changesync_undo_requests_total",
		Help:        "Undo requests by outcome: applied, planned (dry run), conflict, failed or refused.",
		ConstLabels: prometheus.Labels{"pipeline": pipeline},
	}, []string{"outcome"})
	return c, reg.Register(c)
}

// Snapshot records the progress of the initial copy of table.
func (m *Pipeline) Snapshot(table string, copied, estimate int64) {
	if m == nil {
		return
	}
	m.snapshotRows.WithLabelValues(table, "copied").Set(float64(copied))
	m.snapshotRows.WithLabelValues(table, "estimated").Set(float64(estimate))
}

// Collector reads the state of the slot and of held changes when scraped.
type Collector struct {
	pipeline, slot string
	source, target *pgxpool.Pool
	reader         *capture.Reader
	log            *slog.Logger

	lagBytes, retained, walStatus, pending, reconnects *prometheus.Desc
	streamedOpen, spillBytes                           *prometheus.Desc
}

// NewCollector returns a collector for the slot of reader on source and the held
// changes of pipeline in the metadata schema of target.
func NewCollector(pipeline, slot string, source, target *pgxpool.Pool, reader *capture.Reader,
	log *slog.Logger,
) *Collector {
	labels := prometheus.Labels{"pipeline": pipeline}
	return &Collector{
		pipeline: pipeline, slot: slot, source: source, target: target, reader: reader, log: log,
		lagBytes: prometheus.NewDesc("changesync_lag_bytes",
			"Source WAL end last reported by the server minus the position confirmed to the slot.", nil, labels),
		retained: prometheus.NewDesc("changesync_slot_retained_wal_bytes",
			"WAL the source keeps for the slot: current WAL position minus the slot's restart_lsn.", nil, labels),
		walStatus: prometheus.NewDesc("changesync_slot_wal_status",
			"1 for the slot's current wal_status (reserved, extended, unreserved or lost).",
			[]string{"status"}, labels),
		pending: prometheus.NewDesc("changesync_pending_changes",
			"Changes waiting for a person: held, and blocked behind a held change of their row.",
			[]string{"status"}, labels),
		reconnects: prometheus.NewDesc("changesync_reconnects_total",
			"Replication connections started again after a lost connection.", nil, labels),
		streamedOpen: prometheus.NewDesc("changesync_streamed_transactions_open",
			"Transactions the source streams while in progress, kept in spill files until they end.", nil, labels),
		spillBytes: prometheus.NewDesc("changesync_spill_bytes",
			"Bytes in the spill files of transactions streamed while in progress.", nil, labels),
	}
}

// Describe sends the descriptions of the collected metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.lagBytes, c.retained, c.walStatus, c.pending, c.reconnects, c.streamedOpen, c.spillBytes,
	} {
		ch <- d
	}
}

// Collect reads the slot from the source and the pending changes from the target. A
// query that fails leaves its metrics out of the scrape and is logged.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()

	stats := c.reader.Stats()
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(stats.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.streamedOpen, prometheus.GaugeValue, float64(stats.StreamedOpen))
	ch <- prometheus.MustNewConstMetric(c.spillBytes, prometheus.GaugeValue, float64(stats.SpillBytes))
	if stats.ServerWALEnd > 0 {
		lag := max(float64(stats.ServerWALEnd)-float64(stats.Confirmed), 0)
		ch <- prometheus.MustNewConstMetric(c.lagBytes, prometheus.GaugeValue, lag)
	}

	var retained float64
	var status string
	err := c.source.QueryRow(ctx, `SELECT coalesce(pg_current_wal_lsn() - restart_lsn, 0)::float8,
		coalesce(wal_status, 'lost') FROM pg_replication_slots WHERE slot_name = $1`, c.slot).Scan(&retained, &status)
	if err != nil {
		c.log.Warn("metrics: read the slot failed", "slot", c.slot, "error", err.Error())
	} else {
		ch <- prometheus.MustNewConstMetric(c.retained, prometheus.GaugeValue, retained)
		ch <- prometheus.MustNewConstMetric(c.walStatus, prometheus.GaugeValue, 1, status)
	}

	counts := map[string]float64{"held": 0, "blocked": 0}
	rows, err := c.target.Query(ctx, `SELECT status::text, count(*)::float8 FROM change_events
		WHERE pipeline = $1 AND status IN ('held', 'blocked') GROUP BY status`, c.pipeline)
	if err == nil {
		for rows.Next() {
			var s string
			var n float64
			if rows.Scan(&s, &n) == nil {
				counts[s] = n
			}
		}
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		c.log.Warn("metrics: read the pending changes failed", "pipeline", c.pipeline, "error", err.Error())
		return
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, n, s)
	}
}
