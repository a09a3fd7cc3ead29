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
	c := catchUp{pipeline: pipeline, interval: catchUpInterval, minBytes: catchUpMinBytes, log: log}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(catchUpInterval):
		}
		c.check(r.Stats())
	}
}

// catchUp is the state of the catch-up report between two looks at the stream.
type catchUp struct {
	pipeline   string
	interval   time.Duration // time between two calls of check
	minBytes   float64
	log        *slog.Logger
	lastBehind float64 // bytes behind at the previous look; 0 before the first
}

// check logs one line when st is at least minBytes behind the source. The rate and the
// time left are in the line when the gap closed since the previous look.
func (c *catchUp) check(st capture.Stats) {
	if st.ServerWALEnd == 0 {
		return
	}
	behind := max(float64(st.ServerWALEnd)-float64(st.Confirmed), 0)
	last := c.lastBehind
	c.lastBehind = behind
	if behind < c.minBytes {
		return
	}
	attrs := []any{"pipeline", c.pipeline, "bytes_behind", int64(behind), "confirmed_lsn", st.Confirmed.String()}
	if closing := (last - behind) / c.interval.Seconds(); last > 0 && closing > 0 {
		left := time.Duration(behind / closing * float64(time.Second))
		attrs = append(attrs, "bytes_per_second", int64(closing), "time_left", left.Round(time.Second).String())
	}
	c.log.Info("catching up with the source", attrs...)
}
