package capture

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
)

// Reconnect backoff: the first retry comes after about half a second, later ones up to
// 30s apart. It starts over after a session that delivered a transaction.
const (
	retryInitialInterval = 500 * time.Millisecond
	retryMaxInterval     = 30 * time.Second
)

// Stream starts replication after start, the EndLSN of the last transaction durable in
// the target (0 means the slot's confirmed position), and sends each committed
// transaction to out in commit order. Transactions whose CommitLSN is below start are
// skipped, because the server may send again what the slot has not confirmed. On a lost
// connection Stream reconnects with exponential backoff and does not send a transaction
// twice. It returns nil when ctx ends, and a PermanentError when the slot or the
// publication is missing, the slot is invalidated, or the server rejects the role or the
// database.
func (r *Reader) Stream(ctx context.Context, start change.LSN, out chan<- *change.Tx) error {
	r.Confirm(start)
	resume := start
	retry := &backoff.ExponentialBackOff{
		InitialInterval:     retryInitialInterval,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         retryMaxInterval,
	}

	attempt := 0
	for {
		delivered, err := r.runSession(ctx, &resume, out)
		if ctx.Err() != nil {
			return r.stopped()
		}
		if IsPermanent(err) {
			return err
		}
		if delivered {
			retry.Reset()
			attempt = 0
		}
		attempt++
		r.reconnects.Add(1)

		delay := retry.NextBackOff()
		r.log.Warn("reconnecting", logSlot, r.cfg.Slot, logAttempt, attempt,
			logError, err.Error(), logDelay, delay.String())
		select {
		case <-ctx.Done():
			return r.stopped()
		case <-time.After(delay):
		}
	}
}

// stopped logs the end of a stream whose context ended and returns nil.
func (r *Reader) stopped() error {
	r.log.Info("stream stopped", logSlot, r.cfg.Slot,
		logLSN, change.LSN(r.confirmed.Load()).String())
	return nil
}

// runSession streams on one replication connection until it fails or ctx ends, and
// always returns an error. resume is the CommitLSN below which transactions are skipped,
// and it advances to the EndLSN of each transaction sent. delivered reports whether a
// transaction was sent.
func (r *Reader) runSession(ctx context.Context, resume *change.LSN, out chan<- *change.Tx,
) (delivered bool, err error) {
	aux, err := r.connect(ctx)
	if err != nil {
		return false, err
	}
	defer closeConn(aux)

	slotConfirmed, err := r.checkSource(ctx, aux)
	if err != nil {
		return false, err
	}
	r.Confirm(slotConfirmed)
	if r.confirmed.Load() == 0 {
		return false, fmt.Errorf("stream from slot %s: the slot has no confirmed_flush_lsn yet",
			r.cfg.Slot)
	}

	repl, err := r.connectReplication(ctx)
	if err != nil {
		return false, err
	}
	defer closeConn(repl)

	// The server starts at the slot's confirmed_flush_lsn when the requested position is
	// lower, so asking for the higher of the two only makes the log truthful.
	if err := r.startReplication(ctx, repl, aux, max(*resume, slotConfirmed)); err != nil {
		return false, err
	}
	s := newSession(r, repl, aux, resume, out)
	defer s.dec.close()
	r.connected.Store(true)
	err = s.run(ctx)
	r.connected.Store(false)
	return s.delivered, err
}

// startReplication sends START_REPLICATION and turns the errors that mean a missing or
// invalidated slot into a PermanentError.
func (r *Reader) startReplication(ctx context.Context, repl *pgconn.PgConn, aux *pgx.Conn,
	start change.LSN,
) error {
	opts := pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: r.pluginArgs(serverMajor(repl)),
	}
	err := pglogrepl.StartReplication(ctx, repl, r.cfg.Slot, pglogrepl.LSN(start), opts)
	if err != nil {
		err = fmt.Errorf("start replication from slot %s at %s: %w", r.cfg.Slot, start, err)
		return r.explain(ctx, aux, err)
	}
	r.log.Info("connected", logSlot, r.cfg.Slot, logLSN, start.String())
	return nil
}

// streamingMinVersion is the first PostgreSQL major version whose pgoutput streams
// transactions in progress.
const streamingMinVersion = 14

// pluginArgs are the pgoutput options for a server of the given major version. Protocol
// version 2 with streaming on sends a transaction that outgrows the server's
// logical_decoding_work_mem while it is in progress, so the server keeps it neither in
// memory nor in its own spill files.
func (r *Reader) pluginArgs(serverMajor int) []string {
	args := []string{"proto_version '1'"}
	if r.streaming(serverMajor) {
		args = []string{"proto_version '2'", "streaming 'on'"}
	}
	return append(args, "publication_names "+r.quotedPublication(), "messages 'true'")
}

// streaming reports whether transactions in progress are streamed from a server of the
// given major version.
func (r *Reader) streaming(serverMajor int) bool {
	return !r.cfg.DisableStreaming && serverMajor >= streamingMinVersion
}

// serverMajor returns the major version of the server conn is connected to, from the
// server_version it reports at startup, such as "15.4 (Debian 15.4-1)". It returns 0
// when the version cannot be read.
func serverMajor(conn *pgconn.PgConn) int {
	v := conn.ParameterStatus("server_version")
	end := strings.IndexFunc(v, func(c rune) bool { return c < '0' || c > '9' })
	if end < 0 {
		end = len(v)
	}
	major, err := strconv.Atoi(v[:end])
	if err != nil {
		return 0
	}
	return major
}

// explain returns a PermanentError instead of err when the slot or the publication is
// the cause. The server reports a missing slot or publication and an invalidated slot
// with SQLSTATE 42704 or 55000, so a catalog check finds which it is. Other errors come
// back as they are, to be retried.
func (r *Reader) explain(ctx context.Context, aux *pgx.Conn, err error) error {
	code := sqlstate(err)
	if code != sqlstateUndefinedObject && code != sqlstateObjectNotInPrereqState {
		return err
	}
	if _, checkErr := r.checkSource(ctx, aux); checkErr != nil {
		return checkErr
	}

	// The SQLSTATE is the same for a missing slot and a missing publication, so only the
	// message tells that the walsender misses a publication the catalog now has.
	var pgErr *pgconn.PgError
	if code == sqlstateUndefinedObject && errors.As(err, &pgErr) &&
		strings.Contains(pgErr.Message, "publication") {
		return r.errPublicationTooNew(err)
	}
	return err
}
