package capture

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pglogrepl"

	"github.com/datasense/changesync/pkg/change"
)

// Protocol version 2 lets the server send a transaction while it is in progress, once it
// outgrows logical_decoding_work_mem: in blocks between StreamStart and StreamStop,
// mixed with other transactions, until a StreamCommit or a StreamAbort ends it. Changes
// of a subtransaction rolled back by ROLLBACK TO SAVEPOINT are streamed too, and a
// StreamAbort naming the subtransaction follows. The decoder keeps each streamed
// transaction in a spill file and decodes it at StreamCommit as if it had come whole
// between Begin and Commit. Relation and Type messages inside the stream take effect at
// that point too, which is also when PostgreSQL's own subscriber applies them.

func (d *decoder) streamStart(m *pglogrepl.StreamStartMessageV2) error {
	if d.tx != nil || d.stream != nil {
		return fmt.Errorf("stream start of xid %d inside another transaction", m.Xid)
	}
	spilled := d.streams[m.Xid]
	switch {
	case spilled == nil && m.FirstSegment == 0:
		return fmt.Errorf("stream of xid %d continues, but its first segment never arrived", m.Xid)
	case spilled == nil:
		var err error
		if spilled, err = newSpill(d.spillDir, m.Xid, d.spillUsage); err != nil {
			return err
		}
		d.streams[m.Xid] = spilled
	case m.FirstSegment != 0:
		return fmt.Errorf("stream of xid %d starts a second time", m.Xid)
	}
	d.stream = spilled
	return nil
}

func (d *decoder) streamStop() error {
	if d.stream == nil {
		return fmt.Errorf("stream stop without a stream start")
	}
	d.stream = nil
	return nil
}

// streamAbort drops a streamed transaction, or marks a subtransaction of it as rolled
// back. A transaction whose stream never arrived has nothing to drop.
func (d *decoder) streamAbort(m *pglogrepl.StreamAbortMessageV2) {
	spilled := d.streams[m.Xid]
	if spilled == nil {
		return
	}
	if m.SubXid == m.Xid {
		spilled.close()
		delete(d.streams, m.Xid)
		d.log.Debug("streamed transaction aborted", logXid, m.Xid, logCount, spilled.messages)
		return
	}
	spilled.aborted[m.SubXid] = true
}

// streamCommit decodes the spill file of a committed streamed transaction and passes its
// parts and its end to emit. The subtransactions rolled back inside it are left out.
func (d *decoder) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2,
	emit func(*change.Tx) error,
) error {
	commitLSN := change.LSN(m.CommitLSN)
	if d.tx != nil || d.stream != nil {
		return fmt.Errorf("stream commit of xid %d at %s inside another transaction", m.Xid, commitLSN)
	}
	spilled := d.streams[m.Xid]
	if spilled == nil {
		return fmt.Errorf("stream commit of xid %d at %s, but its stream never arrived", m.Xid, commitLSN)
	}
	delete(d.streams, m.Xid)
	defer spilled.close()
	if d.resume != nil && commitLSN < *d.resume {
		return nil
	}
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("decoding streamed transaction", logXid, m.Xid, logLSN, commitLSN.String(),
			logCount, spilled.messages, "spilled_bytes", spilled.bytes, "aborted_subtransactions", len(spilled.aborted))
	}

	d.tx = &change.Tx{Xid: m.Xid, BeginLSN: commitLSN, CommitTime: m.CommitTime}
	err := spilled.each(func(data []byte) error {
		msg, err := parseMessage(data, true)
		if err != nil {
			return err
		}
		switch msg.(type) {
		case *pglogrepl.BeginMessage, *pglogrepl.CommitMessage:
			return fmt.Errorf("%s message inside the stream", msg.Type())
		}
		if spilled.aborted[streamedXid(msg)] {
			return nil
		}
		tx, err := d.handle(ctx, msg)
		if err != nil || tx == nil {
			return err
		}
		return emit(tx)
	})
	if err != nil {
		d.tx = nil
		return fmt.Errorf("streamed transaction %d: %w", m.Xid, err)
	}
	tx, err := d.commit(&pglogrepl.CommitMessage{
		CommitLSN:         m.CommitLSN,
		TransactionEndLSN: m.TransactionEndLSN,
		CommitTime:        m.CommitTime,
	})
	if err != nil {
		return err
	}
	return emit(tx)
}

// streamedXid returns the xid of the (sub)transaction that made a change inside a
// stream, and 0 for the messages that describe relations and types, which apply to
// the whole stream.
func streamedXid(msg pglogrepl.Message) uint32 {
	switch m := msg.(type) {
	case *pglogrepl.InsertMessageV2:
		return m.Xid
	case *pglogrepl.UpdateMessageV2:
		return m.Xid
	case *pglogrepl.DeleteMessageV2:
		return m.Xid
	case *pglogrepl.TruncateMessageV2:
		return m.Xid
	case *pglogrepl.LogicalDecodingMessageV2:
		return m.Xid
	}
	return 0
}
