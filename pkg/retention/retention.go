// Package retention deletes old rows of the metadata tables: change events with their
// sync_log and undo_requests rows once they are older than the audit retention and no
// longer undoable, and notifications that were delivered or failed long enough ago.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/store"
)

// chunk is the number of change events deleted per transaction, so that a first run on
// a large audit does not hold locks for long.
const chunk = 5000

// Job deletes old metadata rows of one pipeline.
type Job struct {
	store    *store.Store
	cfg      config.Retention
	pipeline string
	log      *slog.Logger
	deleted  *prometheus.CounterVec
}

// New returns a job; its counter changesync_retention_deleted_total{table} is registered
// with reg unless reg is nil.
func New(st *store.Store, cfg config.Retention, pipeline string, reg prometheus.Registerer, log *slog.Logger,
) (*Job, error) {
	j := &Job{
		store: st, cfg: cfg, pipeline: pipeline, log: log,
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "changesync_retention_deleted_total",
			Help:        "Metadata rows deleted by the retention job, by table.",
			ConstLabels: prometheus.Labels{"pipeline": pipeline},
		}, []string{"table"}),
	}
	if reg != nil {
		if err := reg.Register(j.deleted); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// Run runs the job every Interval until ctx ends. A failed run is logged and tried again
// at the next interval.
func (j *Job) Run(ctx context.Context) error {
	if j.cfg.Audit == 0 && j.cfg.Outbox == 0 {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(j.cfg.Interval):
		}
		if _, err := j.Once(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("retention run failed; it runs again at the next interval", "pipeline", j.pipeline,
				"error", err.Error())
		}
	}
}

// Counts are the rows one run deleted.
type Counts struct {
	ChangeEvents, SyncLog, UndoRequests, Outbox int64
}

// Once deletes what is past retention now and returns how many rows it deleted.
func (j *Job) Once(ctx context.Context) (Counts, error) {
	var total Counts
	if j.cfg.Audit > 0 {
		// A synced change stays while it can still be undone.
		keep := max(j.cfg.Audit, j.cfg.UndoHorizon)
		for {
			n, err := j.deleteChanges(ctx, j.cfg.Audit, keep)
			if err != nil {
				return total, err
			}
			total.ChangeEvents += n.ChangeEvents
			total.SyncLog += n.SyncLog
			total.UndoRequests += n.UndoRequests
			if n.ChangeEvents < chunk {
				break
			}
		}
	}
	if j.cfg.Outbox > 0 {
		tag, err := j.store.Pool.Exec(ctx, `DELETE FROM outbox
			WHERE coalesce(delivered_at, failed_at) < now() - make_interval(secs => $1)`, j.cfg.Outbox.Seconds())
		if err != nil {
			return total, fmt.Errorf("delete old notifications: %w", err)
		}
		total.Outbox = tag.RowsAffected()
	}
	j.deleted.WithLabelValues("change_events").Add(float64(total.ChangeEvents))
	j.deleted.WithLabelValues("sync_log").Add(float64(total.SyncLog))
	j.deleted.WithLabelValues("undo_requests").Add(float64(total.UndoRequests))
	j.deleted.WithLabelValues("outbox").Add(float64(total.Outbox))
	if total != (Counts{}) {
		j.log.Info("retention deleted old rows", "pipeline", j.pipeline, "change_events", total.ChangeEvents,
			"sync_log", total.SyncLog, "undo_requests", total.UndoRequests, "outbox", total.Outbox)
	}
	return total, nil
}

// deleteChanges deletes up to chunk change events older than audit, and synced ones
// older than keep, with the rows that refer to them, in one transaction.
func (j *Job) deleteChanges(ctx context.Context, audit, keep time.Duration) (Counts, error) {
	var n Counts
	tx, err := j.store.Pool.Begin(ctx)
	if err != nil {
		return n, err
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `CREATE TEMP TABLE retention_old ON COMMIT DROP AS
		SELECT id FROM change_events
		WHERE pipeline = $1 AND status NOT IN ('held', 'blocked')
		  AND detected_at < now() - make_interval(secs => $2)
		  AND (status <> 'synced' OR detected_at < now() - make_interval(secs => $3))
		LIMIT $4`, j.pipeline, audit.Seconds(), keep.Seconds(), chunk)
	if err != nil {
		return n, fmt.Errorf("select old change events: %w", err)
	}
	steps := []struct {
		sql   string
		count *int64
	}{
		{
			`DELETE FROM sync_log WHERE change_event_id IN (SELECT id FROM retention_old)
			OR undo_request IN (SELECT u.id FROM undo_requests u JOIN retention_old o ON o.id = u.change_event)`,
			&n.SyncLog,
		},
		{`DELETE FROM undo_requests WHERE change_event IN (SELECT id FROM retention_old)`, &n.UndoRequests},
		{`DELETE FROM change_events WHERE id IN (SELECT id FROM retention_old)`, &n.ChangeEvents},
	}
	for _, s := range steps {
		tag, err := tx.Exec(ctx, s.sql)
		if err != nil {
			return n, fmt.Errorf("delete old audit rows: %w", err)
		}
		*s.count = tag.RowsAffected()
	}
	return n, tx.Commit(ctx)
}
