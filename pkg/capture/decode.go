package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/jackc/pglogrepl"

	"github.com/datasense/changesync/pkg/change"
)

// contextPrefix is the prefix of the logical decoding messages with which an application
// attaches its user and thread to a transaction:
//
//	pg_logical_emit_message(true, 'changesync', '{"user": "…", "thread_id": "…"}')
const contextPrefix = "changesync"

// txContext is the content of a context message.
type txContext struct {
	User     string `json:"user"`
	ThreadID string `json:"thread_id"`
}

// decoder turns the pgoutput messages of one replication session into transactions.
// Relation messages are sent again on every new session, so each session starts with an
// empty decoder.
type decoder struct {
	slot      string
	relations map[uint32]*change.Relation // replaced, never changed, on each Relation message
	types     *typeNames
	tables    map[change.TableName]bool // empty keeps every table
	// partitions looks up partitioned tables, whose moved rows become one UPDATE; nil
	// leaves a move as a DELETE and an INSERT.
	partitions  partitionLookup
	partitioned map[uint32]*partitioning // by relation OID, for the partitioned tables
	tx          *change.Tx               // open transaction between Begin and Commit
	// partEvents is the number of events after which an open transaction is handed on
	// as a part, so that a large transaction never sits in memory whole; 0 never cuts.
	partEvents int
	// spillDir is the directory of the spill files of streamed transactions; empty means
	// the system's temporary directory.
	spillDir   string
	streams    map[uint32]*spill // streamed transactions by xid, until commit or abort
	stream     *spill            // the transaction between StreamStart and StreamStop
	spillUsage *spillUsage       // shared across sessions
	// resume, when set, is the commit LSN below which a streamed transaction was
	// delivered before, so its spill file is dropped unread.
	resume    *change.LSN
	log       *slog.Logger
	malformed *atomic.Int64 // count of malformed context messages, shared across sessions
}

func newDecoder(slot string, tables map[change.TableName]bool, types *typeNames,
	log *slog.Logger, malformed *atomic.Int64,
) *decoder {
	return &decoder{
		slot:       slot,
		relations:  map[uint32]*change.Relation{},
		types:      types,
		tables:     tables,
		streams:    map[uint32]*spill{},
		spillUsage: &spillUsage{},

		partitioned: map[uint32]*partitioning{},
		log:         log,
		malformed:   malformed,
	}
}

// inTransaction reports whether a Begin came without its Commit yet, or a StreamStart
// without its StreamStop.
func (d *decoder) inTransaction() bool { return d.tx != nil || d.stream != nil }

// close frees the spill files of streamed transactions that did not end. The server
// streams them again from their start on the next connection.
func (d *decoder) close() {
	for xid, sp := range d.streams {
		sp.close()
		delete(d.streams, xid)
	}
	d.stream = nil
}

// decode decodes one pgoutput message and passes each transaction, or part of one, that
// the message completes to emit. A StreamCommit can complete many parts.
func (d *decoder) decode(ctx context.Context, data []byte, emit func(*change.Tx) error) error {
	if d.stream != nil && len(data) > 0 && data[0] != byte(pglogrepl.MessageTypeStreamStop) {
		return d.stream.write(data)
	}
	msg, err := parseMessage(data, false)
	if err != nil {
		return err
	}

	switch m := msg.(type) {
	case *pglogrepl.StreamStartMessageV2:
		return d.streamStart(m)
	case *pglogrepl.StreamStopMessageV2:
		return d.streamStop()
	case *pglogrepl.StreamAbortMessageV2:
		d.streamAbort(m)
		return nil
	case *pglogrepl.StreamCommitMessageV2:
		return d.streamCommit(ctx, m, emit)
	}
	tx, err := d.handle(ctx, msg)
	if err != nil || tx == nil {
		return err
	}
	return emit(tx)
}

// handle handles a message of a transaction, or one that may come between
// transactions. It returns the transaction that a Commit ends, or a part that an event
// completes, and nil for every other message.
func (d *decoder) handle(ctx context.Context, msg pglogrepl.Message) (*change.Tx, error) {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		return nil, d.begin(m)
	case *pglogrepl.CommitMessage:
		return d.commit(m)
	case *pglogrepl.RelationMessageV2:
		return nil, d.relation(ctx, &m.RelationMessage)
	case *pglogrepl.TypeMessageV2:
		d.types.add(m.DataType, m.Namespace, m.Name)
	case *pglogrepl.InsertMessageV2:
		return d.part(d.insert(&m.InsertMessage))
	case *pglogrepl.UpdateMessageV2:
		return d.part(d.update(&m.UpdateMessage))
	case *pglogrepl.DeleteMessageV2:
		return d.part(d.delete(&m.DeleteMessage))
	case *pglogrepl.TruncateMessageV2:
		return d.part(d.truncate(&m.TruncateMessage))
	case *pglogrepl.LogicalDecodingMessageV2:
		d.message(&m.LogicalDecodingMessage)
	}
	// Origin messages name the origin of a replicated transaction, which changesync does
	// not track.
	return nil, nil
}

func (d *decoder) begin(m *pglogrepl.BeginMessage) error {
	if d.tx != nil {
		return fmt.Errorf("begin of xid %d while xid %d is open", m.Xid, d.tx.Xid)
	}
	d.tx = &change.Tx{Xid: m.Xid, BeginLSN: change.LSN(m.FinalLSN), CommitTime: m.CommitTime}
	return nil
}

// part returns the events of the open transaction as a part when they reach partEvents,
// and keeps the transaction open for the events that follow. The CommitLSN of a part is
// the final LSN that Begin announced, which is the LSN of the commit record.
func (d *decoder) part(err error) (*change.Tx, error) {
	if err != nil || d.partEvents <= 0 || d.tx == nil || len(d.tx.Events) < d.partEvents {
		return nil, err
	}
	// A trailing DELETE stays open, because the next event may be the INSERT of a row
	// moved between partitions, to be joined with it.
	events := d.tx.Events
	cut := len(events)
	if d.mayMove(&events[cut-1]) {
		cut--
	}
	if cut == 0 {
		return nil, nil
	}
	part := *d.tx
	part.Events = events[:cut]
	part.More = true
	part.CommitLSN = d.tx.BeginLSN
	part.Stamp(d.slot)
	d.tx.FirstSeq += cut
	d.tx.Events = slices.Clone(events[cut:])
	return &part, nil
}

func (d *decoder) commit(m *pglogrepl.CommitMessage) (*change.Tx, error) {
	if d.tx == nil {
		return nil, fmt.Errorf("commit at %s without a begin", change.LSN(m.CommitLSN))
	}
	tx := d.tx
	d.tx = nil

	tx.CommitLSN = change.LSN(m.CommitLSN)
	tx.EndLSN = change.LSN(m.TransactionEndLSN)
	tx.CommitTime = m.CommitTime
	tx.Stamp(d.slot)
	return tx, nil
}

// relation replaces the cached relation of an OID with a new one.
func (d *decoder) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	rel := &change.Relation{
		OID:             m.RelationID,
		Table:           change.TableName{Schema: m.Namespace, Name: m.RelationName},
		ReplicaIdentity: m.ReplicaIdentity,
		Columns:         make([]change.Column, len(m.Columns)),
	}
	for i, c := range m.Columns {
		name, err := d.types.name(ctx, c.DataType)
		if err != nil {
			return fmt.Errorf("decode relation %s column %s: %w", rel.Table, c.Name, err)
		}
		rel.Columns[i] = change.Column{
			Name:     c.Name,
			TypeOID:  c.DataType,
			TypeName: name,
			TypeMod:  c.TypeModifier,
			Key:      c.Flags&1 != 0, // flag 1 marks a replica identity column
		}
	}
	d.relations[rel.OID] = rel
	delete(d.partitioned, rel.OID)
	if d.partitions == nil {
		return nil
	}
	p, err := d.partitions(ctx, rel)
	if err != nil {
		return err
	}
	if p != nil {
		d.partitioned[rel.OID] = p
	}
	return nil
}

// target returns the cached relation of a row message and whether its events are kept.
func (d *decoder) target(kind string, oid uint32) (*change.Relation, bool, error) {
	if d.tx == nil {
		return nil, false, fmt.Errorf("%s for relation oid %d outside a transaction", kind, oid)
	}
	rel, ok := d.relations[oid]
	if !ok {
		return nil, false, fmt.Errorf("%s for relation oid %d before its Relation message", kind, oid)
	}
	return rel, len(d.tables) == 0 || d.tables[rel.Table], nil
}

func (d *decoder) insert(m *pglogrepl.InsertMessage) error {
	rel, keep, err := d.target("insert", m.RelationID)
	if err != nil || !keep {
		return err
	}
	tuple, err := decodeTuple(rel, m.Tuple, false)
	if err != nil {
		return fmt.Errorf("decode insert: %w", err)
	}
	if n := len(d.tx.Events); n > 0 && d.joinMove(&d.tx.Events[n-1], rel, tuple) {
		return nil
	}
	d.tx.Events = append(d.tx.Events, change.Event{Op: change.OpInsert, Relation: rel, New: tuple})
	return nil
}

// mayMove reports whether ev is a DELETE that the next INSERT may turn into the UPDATE
// of a row moved between partitions.
func (d *decoder) mayMove(ev *change.Event) bool {
	return ev.Op == change.OpDelete && d.partitioned[ev.Relation.OID] != nil
}

// joinMove turns ev, the last event, into an UPDATE to tuple when ev deletes the row
// that an INSERT of tuple into rel moves to another partition. pgoutput sends the
// Relation message again before the first change of each partition, so the DELETE may
// refer to an earlier copy of the same relation.
func (d *decoder) joinMove(ev *change.Event, rel *change.Relation, tuple change.Tuple) bool {
	if ev.Relation.OID != rel.OID || !sameColumns(ev.Relation, rel) || !d.mayMove(ev) ||
		!d.partitioned[rel.OID].moved(ev.Old, tuple) {
		return false
	}
	ev.Op, ev.Relation, ev.New = change.OpUpdate, rel, tuple
	return true
}

// sameColumns reports whether two versions of a relation have the same columns, by name
// and type, in the same order.
func sameColumns(a, b *change.Relation) bool {
	if a == b {
		return true
	}
	return slices.EqualFunc(a.Columns, b.Columns, func(x, y change.Column) bool {
		return x.Name == y.Name && x.TypeOID == y.TypeOID
	})
}

func (d *decoder) update(m *pglogrepl.UpdateMessage) error {
	rel, keep, err := d.target("update", m.RelationID)
	if err != nil || !keep {
		return err
	}
	keyOnly := m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey
	old, err := decodeTuple(rel, m.OldTuple, keyOnly)
	if err != nil {
		return fmt.Errorf("decode update, old tuple: %w", err)
	}
	tuple, err := decodeTuple(rel, m.NewTuple, false)
	if err != nil {
		return fmt.Errorf("decode update, new tuple: %w", err)
	}
	d.tx.Events = append(d.tx.Events, change.Event{
		Op: change.OpUpdate, Relation: rel,
		Old: old, OldKeyOnly: old != nil && keyOnly, New: tuple,
	})
	return nil
}

func (d *decoder) delete(m *pglogrepl.DeleteMessage) error {
	rel, keep, err := d.target("delete", m.RelationID)
	if err != nil || !keep {
		return err
	}
	keyOnly := m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey
	old, err := decodeTuple(rel, m.OldTuple, keyOnly)
	if err != nil {
		return fmt.Errorf("decode delete: %w", err)
	}
	d.tx.Events = append(d.tx.Events, change.Event{
		Op: change.OpDelete, Relation: rel,
		Old: old, OldKeyOnly: keyOnly,
	})
	return nil
}

// truncate records one event per kept relation of a TRUNCATE, so that each table's
// truncate is decided and audited on its own. Every event lists all the relations, which
// lets the applier truncate together the tables that reference each other.
func (d *decoder) truncate(m *pglogrepl.TruncateMessage) error {
	var rels []*change.Relation
	for _, oid := range m.RelationIDs {
		rel, keep, err := d.target("truncate", oid)
		if err != nil {
			return err
		}
		if keep {
			rels = append(rels, rel)
		}
	}
	if len(rels) == 0 {
		return nil
	}
	for _, rel := range rels {
		d.tx.Events = append(d.tx.Events, change.Event{
			Op: change.OpTruncate, Relation: rel,
			Truncated:       rels,
			TruncateCascade: m.Option&pglogrepl.TruncateOptionCascade != 0,
			TruncateRestart: m.Option&pglogrepl.TruncateOptionRestartIdentity != 0,
		})
	}
	return nil
}

// message applies a context message to the open transaction. Other prefixes and
// messages outside a transaction are ignored, and so is malformed JSON, after a warning.
func (d *decoder) message(m *pglogrepl.LogicalDecodingMessage) {
	if d.tx == nil || !m.Transactional || m.Prefix != contextPrefix {
		return
	}
	var c txContext
	if err := json.Unmarshal(m.Content, &c); err != nil {
		d.warnMalformed(err)
		return
	}
	if c.User != "" {
		d.tx.Actor = c.User
	}
	if c.ThreadID != "" {
		d.tx.ContextThreadID = c.ThreadID
	}
}

// warnMalformed logs the first malformed context message at Warn and later ones at
// Debug, with the running count, so a misbehaving application cannot flood the log.
func (d *decoder) warnMalformed(err error) {
	n := d.malformed.Add(1)
	level := slog.LevelDebug
	if n == 1 {
		level = slog.LevelWarn
	}
	d.log.Log(context.Background(), level, "ignoring malformed context message",
		logXid, d.tx.Xid, logCount, n, logError, err.Error())
}

// errBinaryValue is returned for a binary tuple value, which pgoutput sends only when the
// binary option is requested, and changesync never requests it.
var errBinaryValue = errors.New("binary value, but the binary option was not requested")

// decodeTuple turns pgoutput tuple data into a change.Tuple. A nil td gives a nil tuple.
// In a key-only old tuple, a non-key column comes as 'n' but was not sent, so it is
// Absent rather than NULL.
func decodeTuple(rel *change.Relation, td *pglogrepl.TupleData, keyOnly bool,
) (change.Tuple, error) {
	if td == nil {
		return nil, nil
	}
	if len(td.Columns) != len(rel.Columns) {
		return nil, fmt.Errorf("relation %s (oid %d) has %d columns but the tuple has %d",
			rel.Table, rel.OID, len(rel.Columns), len(td.Columns))
	}

	tuple := make(change.Tuple, len(td.Columns))
	for i, col := range td.Columns {
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			tuple[i] = change.NullValue()
			if keyOnly && !rel.Columns[i].Key {
				tuple[i] = change.Value{Kind: change.Absent}
			}
		case pglogrepl.TupleDataTypeText:
			tuple[i] = change.TextValue(string(col.Data))
		case pglogrepl.TupleDataTypeToast:
			tuple[i] = change.Value{Kind: change.Unchanged}
		case pglogrepl.TupleDataTypeBinary:
			return nil, fmt.Errorf("relation %s column %s: %w",
				rel.Table, rel.Columns[i].Name, errBinaryValue)
		default:
			return nil, fmt.Errorf("relation %s column %s: unknown tuple value kind %q",
				rel.Table, rel.Columns[i].Name, col.DataType)
		}
	}
	return tuple, nil
}
