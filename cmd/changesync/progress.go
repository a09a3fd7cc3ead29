package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/datasense/changesync/pkg/capture"
)

// Catch-up reporting: how often it looks, and how far behind the source the slot must be
// for a line to be logged.
const (
	catchUpInterval = 30 * time.Second
	catchUpMinBytes = 16 << 20
)

// reportCatchUp logs, while the confirmed position is far behind the source's WAL, how
// far behind it is, how fast it closes the gap and the time left at that rate.
func reportCatchUp(ctx context.Context, r *capture.Reader, pipeline string, log *slog.Logger) error {
	var lastBehind float64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(catchUpInterval):
		}
		st := r.Stats()
		if st.ServerWALEnd == 0 {
			continue
		}
		behind := max(float64(st.ServerWALEnd)-float64(st.Confirmed), 0)
		if behind < catchUpMinBytes {
			lastBehind = behind
			continue
		}
		attrs := []any{"pipeline", pipeline, "bytes_behind", int64(behind), "confirmed_lsn", st.Confirmed.String()}
		if closing := (lastBehind - behind) / catchUpInterval.Seconds(); lastBehind > 0 && closing > 0 {
			left := time.Duration(behind / closing * float64(time.Second))
			attrs = append(attrs, "bytes_per_second", int64(closing), "time_left", left.Round(time.Second).String())
		}
		log.Info("catching up with the source", attrs...)
		lastBehind = behind
	}
}
