package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Standby timing: how often a standby tries to become active, and how often the active
// process checks the connection that holds its lock.
const (
	standbyRetry  = time.Second
	lockCheckTime = 2 * time.Second
)

// activeLock is the session advisory lock on the target that makes one process the
// active one of a pipeline. It lasts as long as its connection: when the process dies,
// the server ends the session and a standby takes the lock.
type activeLock struct {
	conn     *pgx.Conn
	pipeline string
}

// becomeActive waits until this process holds the pipeline's active lock. A second
// process of the same pipeline waits here as a standby, serving the read API. It
// returns nil and no error when ctx ends first. standby is true while another process
// holds the lock.
func becomeActive(ctx context.Context, url, pipeline string, log *slog.Logger, standby *atomic.Bool,
) (*activeLock, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("connect to the target for the active lock: %w", err)
	}
	standing := false
	for {
		var ok bool
		err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", "changesync/active/"+pipeline).Scan(&ok)
		if err != nil {
			_ = conn.Close(context.Background())
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, fmt.Errorf("take the active lock of pipeline %s: %w", pipeline, err)
		}
		standby.Store(!ok)
		if ok {
			log.Info("active for the pipeline", "pipeline", pipeline)
			return &activeLock{conn: conn, pipeline: pipeline}, nil
		}
		if !standing {
			log.Info("another changesync is active for the pipeline; standing by to take over",
				"pipeline", pipeline)
			standing = true
		}
		select {
		case <-ctx.Done():
			_ = conn.Close(context.Background())
			return nil, nil
		case <-time.After(standbyRetry):
		}
	}
}

// watch checks the lock's connection until ctx ends. It returns an error when the
// connection is lost, because the lock went with it and a standby may be active already.
func (l *activeLock) watch(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(lockCheckTime):
		}
		if err := l.conn.Ping(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("lost the connection that holds the active lock of pipeline %s (%w); "+
				"stopping so that a standby takes over", l.pipeline, err)
		}
	}
}

// release ends the session, which releases the lock at once.
func (l *activeLock) release() {
	_ = l.conn.Close(context.Background())
}
