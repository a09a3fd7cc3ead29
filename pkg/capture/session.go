package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/datasense/changesync/pkg/change"
)

// heartbeatPrefix is the prefix of the non-transactional message a heartbeat writes.
const heartbeatPrefix = "changesync_heartbeat"

// session is one replication connection in streaming mode. One goroutine runs it.
type session struct {
	r         *Reader
	repl      *pgconn.PgConn
	aux       *pgx.Conn // normal connection for type lookups and heartbeat messages
	dec       *decoder
	out       chan<- *change.Tx
	resume    *change.LSN // CommitLSN below which transactions are skipped
	delivered bool

	nextStatus    time.Time
	nextHeartbeat time.Time
	lastData      time.Time  // when transaction content last arrived
	keepaliveEnd  change.LSN // server WAL end from the last keepalive
	emitHeartbeat bool       // cleared when writing a heartbeat message fails

	// receiveCtx ends at receiveDeadline. receive reuses it while the deadline stays the
	// same, because a new deadline context for each message costs a timer and its
	// allocations, three times per single-row transaction.
	receiveCtx      context.Context
	cancelReceive   context.CancelFunc
	receiveDeadline time.Time
}

func newSession(r *Reader, repl *pgconn.PgConn, aux *pgx.Conn, resume *change.LSN,
	out chan<- *change.Tx,
) *session {
	now := time.Now()
	types := newTypeNames(catalogTypeName(aux))
	dec := newDecoder(r.cfg.Slot, r.tables, types, r.log, &r.malformedContext)
	dec.partEvents = r.cfg.PartEvents
	dec.spillDir = r.cfg.SpillDir
	dec.spillUsage = &r.spill
	dec.partitions = catalogPartitioning(aux)
	dec.resume = resume
	return &session{
		r:             r,
		repl:          repl,
		aux:           aux,
		dec:           dec,
		out:           out,
		resume:        resume,
		nextStatus:    now, // report the confirmed position right away
		nextHeartbeat: now.Add(r.cfg.Heartbeat),
		lastData:      now,
		emitHeartbeat: true,
	}
}

// run receives and handles messages until the connection fails or ctx ends.
func (s *session) run(ctx context.Context) error {
	defer s.stopReceive()
	defer func() {
		if ctx.Err() != nil {
			s.finalStatus()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.tick(ctx); err != nil {
			return err
		}

		msg, err := s.receive(ctx)
		if pgconn.Timeout(err) {
			continue
		}
		if err != nil {
			return s.r.explain(ctx, s.aux, fmt.Errorf("receive from slot %s: %w", s.r.cfg.Slot, err))
		}
		if err := s.handle(ctx, msg); err != nil {
			return err
		}
	}
}

// tick sends a standby status update and runs the heartbeat when they are due.
func (s *session) tick(ctx context.Context) error {
	now := time.Now()
	if !now.Before(s.nextStatus) {
		s.advanceIdle()
		if err := s.sendStatus(ctx); err != nil {
			return err
		}
	}
	if s.r.cfg.Heartbeat > 0 && !now.Before(s.nextHeartbeat) {
		return s.heartbeat(ctx)
	}
	return nil
}

// receive waits for the next message until the next status update or heartbeat is due.
func (s *session) receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	deadline := s.nextStatus
	if s.r.cfg.Heartbeat > 0 && s.nextHeartbeat.Before(deadline) {
		deadline = s.nextHeartbeat
	}
	if s.receiveCtx == nil || !deadline.Equal(s.receiveDeadline) {
		s.stopReceive()
		s.receiveCtx, s.cancelReceive = context.WithDeadline(ctx, deadline)
		s.receiveDeadline = deadline
	}
	return s.repl.ReceiveMessage(s.receiveCtx)
}

// stopReceive releases the deadline context of receive.
func (s *session) stopReceive() {
	if s.cancelReceive != nil {
		s.cancelReceive()
	}
	s.receiveCtx, s.cancelReceive = nil, nil
}

func (s *session) handle(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		return s.handleCopyData(ctx, m.Data)
	case *pgproto3.ErrorResponse:
		err := pgconn.ErrorResponseToPgError(m)
		return s.r.explain(ctx, s.aux, fmt.Errorf("stream from slot %s: %w", s.r.cfg.Slot, err))
	case *pgproto3.CopyDone:
		return fmt.Errorf("stream from slot %s: the server ended the stream", s.r.cfg.Slot)
	}
	return nil // notices and parameter changes
}

func (s *session) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("stream from slot %s: empty CopyData message", s.r.cfg.Slot)
	}

	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		return s.handleKeepalive(ctx, data[1:])
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("stream from slot %s: parse XLogData: %w", s.r.cfg.Slot, err)
		}
		s.r.walEnd.Store(uint64(xld.ServerWALEnd))
		storeMax(&s.r.received, uint64(xld.WALStart))
		return s.handleXLogData(ctx, xld)
	}
	return fmt.Errorf("stream from slot %s: unknown CopyData message type %q", s.r.cfg.Slot, data[0])
}

func (s *session) handleKeepalive(ctx context.Context, data []byte) error {
	pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data)
	if err != nil {
		return fmt.Errorf("stream from slot %s: parse keepalive: %w", s.r.cfg.Slot, err)
	}
	s.keepaliveEnd = change.LSN(pkm.ServerWALEnd)
	s.r.walEnd.Store(uint64(pkm.ServerWALEnd))
	storeMax(&s.r.received, uint64(pkm.ServerWALEnd))

	if pkm.ReplyRequested {
		return s.sendStatus(ctx)
	}
	return nil
}

func (s *session) handleXLogData(ctx context.Context, xld pglogrepl.XLogData) error {
	wasOpen := s.dec.inTransaction()
	err := s.dec.decode(ctx, xld.WALData, func(tx *change.Tx) error {
		storeMax(&s.r.received, uint64(tx.EndLSN))
		return s.deliver(ctx, tx)
	})
	if wasOpen || s.dec.inTransaction() {
		s.lastData = time.Now()
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("stream from slot %s at %s: %w", s.r.cfg.Slot, change.LSN(xld.WALStart), err)
	}
	return err
}

// deliver sends a transaction to out unless it was sent or applied before. It sends a
// standby status update first when one is due, because a StreamCommit delivers every
// part of a transaction from its spill file without reading the connection. While out
// is full it keeps sending them, so wal_sender_timeout cannot end the connection, and
// those updates report what the pipeline confirms in the meantime.
func (s *session) deliver(ctx context.Context, tx *change.Tx) error {
	if tx.CommitLSN < *s.resume {
		return nil
	}
	if !time.Now().Before(s.nextStatus) {
		if err := s.sendStatus(ctx); err != nil {
			return err
		}
	}

	for {
		wait := time.NewTimer(time.Until(s.nextStatus))
		select {
		case s.out <- tx:
			wait.Stop()
			if !tx.More {
				*s.resume = tx.EndLSN
			}
			s.delivered = true
			return nil
		case <-wait.C:
			if err := s.sendStatus(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			wait.Stop()
			return ctx.Err()
		}
	}
}

// sendStatus sends a standby status update: write is the last position received, and
// flush and apply are the confirmed position. Stream confirms the slot's
// confirmed_flush_lsn before the session starts, so the flush position is never 0, which
// pglogrepl would replace with the write position.
func (s *session) sendStatus(ctx context.Context) error {
	flush := change.LSN(s.r.confirmed.Load())
	write := max(change.LSN(s.r.received.Load()), flush)
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(write),
		WALFlushPosition: pglogrepl.LSN(flush),
		WALApplyPosition: pglogrepl.LSN(flush),
	})
	if err != nil {
		return fmt.Errorf("send standby status update to slot %s: %w", s.r.cfg.Slot, err)
	}
	s.nextStatus = time.Now().Add(s.r.cfg.StatusInterval)
	return nil
}

// advanceIdle confirms the server WAL end of the last keepalive when heartbeats are on,
// no transaction is open and everything sent is confirmed. The server sent, and the
// pipeline handled, everything before that position, so the slot need not retain its WAL.
// This keeps a slot whose tables are quiet from holding back the WAL of busy ones.
func (s *session) advanceIdle() {
	if s.r.cfg.Heartbeat <= 0 || s.dec.inTransaction() {
		return
	}
	confirmed := change.LSN(s.r.confirmed.Load())
	if confirmed >= *s.resume && s.keepaliveEnd > confirmed {
		s.r.Confirm(s.keepaliveEnd)
	}
}

// finalStatus reports the confirmed position once more when the stream stops, so that
// a clean shutdown leaves the slot at the last durable transaction. It gets its own
// short deadline because the stream's context has ended.
func (s *session) finalStatus() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.advanceIdle()
	if err := s.sendStatus(ctx); err != nil {
		s.r.log.Warn("final standby status update failed; the slot resends from its last "+
			"confirmed position, and the checkpoint skips what is applied",
			logSlot, s.r.cfg.Slot, logError, err.Error())
	}
}

// heartbeat runs once per Heartbeat interval. When no transaction content arrived for
// that long, it confirms what advanceIdle allows and writes a heartbeat message, so that
// the server sends a keepalive with a newer WAL end even on an idle database.
func (s *session) heartbeat(ctx context.Context) error {
	s.nextHeartbeat = time.Now().Add(s.r.cfg.Heartbeat)
	if time.Since(s.lastData) < s.r.cfg.Heartbeat {
		return nil
	}
	before := change.LSN(s.r.confirmed.Load())
	s.advanceIdle()
	if change.LSN(s.r.confirmed.Load()) > before {
		if err := s.sendStatus(ctx); err != nil {
			return err
		}
	}
	s.writeHeartbeatMessage(ctx)
	return nil
}

// writeHeartbeatMessage writes a non-transactional logical decoding message. A failure
// is logged once and turns the messages off for the session, because advancing on
// keepalives works without them.
func (s *session) writeHeartbeatMessage(ctx context.Context) {
	if !s.emitHeartbeat {
		return
	}
	_, err := s.aux.Exec(ctx, "SELECT pg_logical_emit_message(false, $1, '')", heartbeatPrefix)
	if err == nil || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return
	}
	s.emitHeartbeat = false
	s.r.log.Warn("heartbeat message failed; heartbeats go on without it for this connection",
		logSlot, s.r.cfg.Slot, logError, err.Error())
}
