package change

import (
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// Op is the kind of a row change. The strings are those of the change_type enum.
type Op string

// The operations of a row change.
const (
	OpInsert   Op = "insert"
	OpUpdate   Op = "update"
	OpDelete   Op = "delete"
	OpTruncate Op = "truncate"
)

// Event is one row change of a source transaction.
type Event struct {
	// ID is derived from the thread and the event's position in the transaction, so a
	// replay of the same transaction produces the same id.
	ID       uuid.UUID
	ThreadID uuid.UUID
	Seq      int // position of the event in its transaction, from 0
	Op       Op
	Relation *Relation
	// Old is the old tuple of an UPDATE or DELETE. It is nil when the server sent none
	// (an UPDATE that kept the key under replica identity DEFAULT). When OldKeyOnly is
	// set, only key columns are known and the others are Absent.
	Old        Tuple
	OldKeyOnly bool
	// New is the new tuple of an INSERT or UPDATE.
	New Tuple
	// Truncated lists all the relations of the TRUNCATE message that produced a truncate
	// event; Relation is the one this event is about.
	Truncated       []*Relation
	TruncateCascade bool
	TruncateRestart bool
}

// Tx is one committed source transaction with its row events in commit order.
type Tx struct {
	Xid        uint32
	ThreadID   uuid.UUID
	BeginLSN   LSN // final LSN of the transaction as announced by Begin
	CommitLSN  LSN // LSN of the commit record; transactions are ordered and resumed by it
	EndLSN     LSN // end of the commit record; confirmed to the slot once durable
	CommitTime time.Time
	// Actor is the user attached to the transaction with pg_logical_emit_message, if any.
	Actor string
	// ContextThreadID is a thread id the application attached to the transaction.
	ContextThreadID string
	Events          []Event
	// FirstSeq is the sequence number of Events[0]. It is 0 except in the later parts of
	// a transaction that arrives in parts.
	FirstSeq int
	// More is set on every part of a large transaction but the last. All parts carry the
	// final CommitLSN, thread id and event ids; EndLSN is 0 until the last part, because
	// only the Commit message brings it.
	More bool
}

// threadNamespace is the UUIDv5 namespace of thread ids.
var threadNamespace = uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11")

// ThreadID derives the thread id of a source transaction from the slot name and the
// commit LSN, which together identify one transaction for the life of a slot.
func ThreadID(slot string, commitLSN LSN) uuid.UUID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(commitLSN))
	return NameUUID(threadNamespace, append([]byte(slot+"/"), b[:]...))
}

// EventID derives the id of the event at position seq of a thread.
func EventID(thread uuid.UUID, seq int) uuid.UUID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	return NameUUID(thread, b[:])
}

// Stamp sets the thread id of the transaction and the id, thread and position of each
// of its events.
func (tx *Tx) Stamp(slot string) {
	tx.ThreadID = ThreadID(slot, tx.CommitLSN)
	for i := range tx.Events {
		ev := &tx.Events[i]
		ev.Seq = tx.FirstSeq + i
		ev.ThreadID = tx.ThreadID
		ev.ID = EventID(tx.ThreadID, ev.Seq)
	}
}
