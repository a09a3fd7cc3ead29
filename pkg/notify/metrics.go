package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus collectors, all named changesync_notify_*.
type metrics struct {
	delivered   *prometheus.CounterVec
	retries     *prometheus.CounterVec
	failed      *prometheus.CounterVec
	depth       prometheus.Gauge
	pending     *prometheus.GaugeVec
	sendSeconds *prometheus.HistogramVec
}

// newMetrics creates the collectors and registers them with reg. A nil reg leaves them
// unregistered.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "changesync_notify_delivered_total",
			Help: "Events a destination acknowledged, by destination and event type. " +
				"A digest counts each event it summarizes.",
		}, []string{"destination", "type"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "changesync_notify_retries_total",
			Help: "Deliveries of an event whose send failed and that were scheduled again, by destination.",
		}, []string{"destination"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "changesync_notify_failed_total",
			Help: "Deliveries of an event given up after the last attempt, by destination.",
		}, []string{"destination"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "changesync_notify_outbox_depth",
			Help: "Outbox events not yet delivered to, or given up by, every destination that wants them.",
		}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "changesync_notify_pending_deliveries",
			Help: "Deliveries waiting to be sent or retried, by destination.",
		}, []string{"destination"}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "changesync_notify_send_duration_seconds",
			Help:    "Duration of one send to a destination, by destination and outcome (ok or error).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}, []string{"destination", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}

	for _, c := range []prometheus.Collector{m.delivered, m.retries, m.failed, m.depth, m.pending, m.sendSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register notify metrics: %w", err)
		}
	}
	return m, nil
}
