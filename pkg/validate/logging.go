package validate

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logInterval is the shortest time between two logs of the same repeated failure.
const logInterval = time.Minute

// limitedLog logs a repeated failure, such as one rule failing on every change of a
// table, at most once per logInterval for each key. The first log after the interval
// counts the repeats that were not logged.
type limitedLog struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	last map[string]*logState
}

type logState struct {
	at         time.Time
	suppressed int
}

func newLimitedLog(log *slog.Logger, now func() time.Time) *limitedLog {
	return &limitedLog{log: log, now: now, last: map[string]*logState{}}
}

// warn logs msg with args at Warn level unless the same key was logged within the
// interval, in which case it only counts the repeat.
func (l *limitedLog) warn(ctx context.Context, key, msg string, args ...any) {
	if !l.log.Enabled(ctx, slog.LevelWarn) {
		return
	}

	l.mu.Lock()
	now := l.now()
	s := l.last[key]
	if s != nil && now.Sub(s.at) < logInterval {
		s.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if s != nil {
		suppressed = s.suppressed
	}
	l.last[key] = &logState{at: now}
	l.mu.Unlock()

	if suppressed > 0 {
		args = append(args, "repeats_not_logged", suppressed)
	}
	l.log.WarnContext(ctx, msg, args...)
}
