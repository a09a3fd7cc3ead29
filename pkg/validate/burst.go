package validate

import (
	"fmt"
	"time"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// burstWarmup is the number of past minutes a table needs before it can raise a burst
// alert, or the whole window when that is shorter. It keeps the first busy minute after
// a start from alerting against an average of nothing.
const burstWarmup = 5

// burstDetector counts the row changes of each table per minute of commit time and
// raises an alert when one minute has more than factor times the average of the
// previous minutes of the window and more than minChanges. Minutes follow commit time,
// so catching up on a backlog does not look like a burst.
type burstDetector struct {
	factor     int
	minChanges int
	window     int // minutes averaged
	tables     map[change.TableName]*tableRate
}

// tableRate is the per-minute history of one table: a ring of window+1 counts, the
// current minute's included.
type tableRate struct {
	counts  []int
	minute  int64 // the current minute, in minutes since the Unix epoch
	history int   // past minutes observed, up to the window
	alerted bool  // whether the current minute has raised its alert
}

// newBurstDetector returns the detector of cfg, or nil when cfg.Factor is 0.
func newBurstDetector(cfg config.Burst) (*burstDetector, error) {
	if cfg.Factor == 0 {
		return nil, nil
	}
	if cfg.Factor < 0 || cfg.MinChanges < 0 || cfg.Window < 2*time.Minute {
		return nil, fmt.Errorf("burst settings factor %d, window %s and min_changes %d are invalid: "+
			"use a factor of 0 or more, a window of at least 2m and min_changes of 0 or more",
			cfg.Factor, cfg.Window, cfg.MinChanges)
	}
	return &burstDetector{
		factor: cfg.Factor, minChanges: cfg.MinChanges, window: int(cfg.Window / time.Minute),
		tables: map[change.TableName]*tableRate{},
	}, nil
}

// observe adds the row changes of a transaction committed at commitTime and returns an
// alert for each table whose current minute has just crossed the threshold.
func (b *burstDetector) observe(tx *change.Tx, counts []tableCount, commitTime time.Time) []Alert {
	minute := commitTime.Unix() / 60
	var alerts []Alert
	for _, c := range counts {
		r := b.tables[c.table]
		if r == nil {
			r = &tableRate{counts: make([]int, b.window+1), minute: minute}
			b.tables[c.table] = r
		}
		r.advance(minute)

		slot := &r.counts[int(r.minute%int64(len(r.counts)))]
		*slot += c.rows
		if r.alerted || !b.isBurst(r, *slot) {
			continue
		}
		r.alerted = true
		average := float64(r.sum()-*slot) / float64(r.history)
		alerts = append(alerts, Alert{
			Kind: AlertBurst, Table: c.table, Xid: tx.Xid, ThreadID: tx.ThreadID,
			CommitLSN: tx.CommitLSN, Time: commitTime, Count: *slot, Limit: b.minChanges,
			Message: fmt.Sprintf("%s received %d changes in the minute from %s, more than %d "+
				"times its average of %.1f changes a minute over the past %d minutes", c.table, *slot,
				time.Unix(r.minute*60, 0).UTC().Format(time.RFC3339), b.factor, average, r.history),
		})
	}
	return alerts
}

// isBurst reports whether count, the changes of the current minute, is over both the
// minimum and factor times the average of the past minutes.
func (b *burstDetector) isBurst(r *tableRate, count int) bool {
	if count <= b.minChanges || r.history < min(burstWarmup, b.window) {
		return false
	}
	past := r.sum() - count
	// count/history > factor*past/history, kept in integers.
	return count*r.history > b.factor*past
}

// advance moves the current minute forward to minute, clearing the minutes in between.
// A minute before the current one, from a commit time that went back, counts as the
// current minute.
func (r *tableRate) advance(minute int64) {
	if minute <= r.minute {
		return
	}
	steps := minute - r.minute
	n := int64(len(r.counts))
	for i := int64(1); i <= min(steps, n); i++ {
		r.counts[int((r.minute+i)%n)] = 0
	}
	r.history = int(min(int64(r.history)+steps, n-1))
	r.minute = minute
	r.alerted = false
}

func (r *tableRate) sum() int {
	total := 0
	for _, c := range r.counts {
		total += c
	}
	return total
}
