package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/datasense/changesync/pkg/change"
)

// Builders of the messages of a transaction streamed while in progress (protocol 2).

func streamStartMsg(xid uint32, first bool) []byte {
	flag := byte(0)
	if first {
		flag = 1
	}
	return newMsg('S').u32(xid).u8(flag).b
}

func streamStopMsg() []byte { return []byte{'E'} }

func streamCommitMsg(xid uint32, commitLSN, endLSN uint64) []byte {
	return newMsg('c').u32(xid).u8(0).u64(commitLSN).u64(endLSN).u64(0).b
}

func streamAbortMsg(xid, subxid uint32) []byte { return newMsg('A').u32(xid).u32(subxid).b }

// inStream inserts the xid that a message carries inside a stream after its type byte.
func inStream(xid uint32, msg []byte) []byte {
	m := newMsg(msg[0]).u32(xid)
	m.b = append(m.b, msg[1:]...)
	return m.b
}

// ids returns the id values of the new tuples of txs, in order.
func ids(txs ...*change.Tx) []string {
	var out []string
	for _, tx := range txs {
		for _, ev := range tx.Events {
			out = append(out, ev.New[0].Text)
		}
	}
	return out
}

func TestDecodeStreamedTransaction(t *testing.T) {
	d, _ := testDecoder()
	t.Cleanup(d.close)
	const top, sub1, sub2 = 700, 701, 702

	txs := feed(t, d,
		relationMsg(9, "t", 'd', "v"),
		streamStartMsg(top, true),
		inStream(top, relationMsg(9, "t", 'd', "v")),
		inStream(top, insertMsg(9, "t:1", "t:a")),
		inStream(sub1, insertMsg(9, "t:2", "t:rolled back")),
		streamStopMsg(),
		// A transaction that commits while the streamed one is in progress.
		beginMsg(0x150, 800),
		insertMsg(9, "t:10", "t:b"),
		commitMsg(0x150, 0x158),
		streamStartMsg(top, false),
		inStream(sub1, insertMsg(9, "t:3", "t:rolled back")),
		inStream(sub2, insertMsg(9, "t:4", "t:kept")),
		streamStopMsg(),
		streamAbortMsg(top, sub1),
		streamStartMsg(top, false),
		inStream(top, contextMsg(true, "changesync", `{"user": "ana"}`)),
		inStream(top, insertMsg(9, "t:5", "t:c")),
		streamStopMsg(),
		streamCommitMsg(top, 0x200, 0x208),
	)
	if len(txs) != 2 {
		t.Fatalf("transactions = %d, want 2", len(txs))
	}
	if got := ids(txs[0]); !slices.Equal(got, []string{"10"}) {
		t.Errorf("first transaction ids = %v, want [10]", got)
	}
	streamed := txs[1]
	if got := ids(streamed); !slices.Equal(got, []string{"1", "4", "5"}) {
		t.Errorf("streamed transaction ids = %v, want [1 4 5]: rows of the rolled back "+
			"subtransaction must be left out", got)
	}
	if streamed.Xid != top || streamed.CommitLSN != 0x200 || streamed.EndLSN != 0x208 || streamed.More {
		t.Errorf("streamed transaction xid %d commit %s end %s more %t, want %d 0/200 0/208 false",
			streamed.Xid, streamed.CommitLSN, streamed.EndLSN, streamed.More, top)
	}
	if streamed.Actor != "ana" {
		t.Errorf("actor = %q, want the one of the context message inside the stream", streamed.Actor)
	}
	if len(d.streams) != 0 || d.inTransaction() {
		t.Errorf("decoder keeps %d streams and open = %t after the commit", len(d.streams), d.inTransaction())
	}
}

func TestDecodeStreamedTransactionAborted(t *testing.T) {
	d, _ := testDecoder()
	t.Cleanup(d.close)
	txs := feed(t, d,
		relationMsg(9, "t", 'd', "v"),
		streamStartMsg(5, true),
		inStream(5, insertMsg(9, "t:1", "t:a")),
		streamStopMsg(),
		streamAbortMsg(5, 5),
		beginMsg(0x300, 6),
		insertMsg(9, "t:2", "t:b"),
		commitMsg(0x300, 0x308),
	)
	if got := ids(txs...); !slices.Equal(got, []string{"2"}) {
		t.Errorf("ids = %v, want [2]: nothing of the aborted transaction", got)
	}
	if len(d.streams) != 0 {
		t.Errorf("decoder keeps %d streams after the abort", len(d.streams))
	}
}

func TestDecodeStreamedTransactionInParts(t *testing.T) {
	d, _ := testDecoder()
	t.Cleanup(d.close)
	d.partEvents = 2
	msgs := [][]byte{relationMsg(9, "t", 'd', "v"), streamStartMsg(5, true)}
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		msgs = append(msgs, inStream(5, insertMsg(9, "t:"+id, "t:x")))
	}
	msgs = append(msgs, streamStopMsg(), streamCommitMsg(5, 0x400, 0x408))
	txs := feed(t, d, msgs...)

	if len(txs) != 3 {
		t.Fatalf("parts = %d, want 3 (2, 2 and 1 events)", len(txs))
	}
	for i, part := range txs {
		if part.CommitLSN != 0x400 || part.More != (i < 2) || part.FirstSeq != 2*i {
			t.Errorf("part %d: commit %s more %t first %d", i, part.CommitLSN, part.More, part.FirstSeq)
		}
	}
	if got := ids(txs...); !slices.Equal(got, []string{"1", "2", "3", "4", "5"}) {
		t.Errorf("ids = %v, want 1 to 5 in order", got)
	}
}

func TestDecodeStreamedTransactionBelowResume(t *testing.T) {
	d, _ := testDecoder()
	t.Cleanup(d.close)
	resume := change.LSN(0x500)
	d.resume = &resume
	txs := feed(t, d,
		relationMsg(9, "t", 'd', "v"),
		streamStartMsg(5, true),
		inStream(5, insertMsg(9, "t:1", "t:a")),
		streamStopMsg(),
		streamCommitMsg(5, 0x400, 0x408),
	)
	if len(txs) != 0 || len(d.streams) != 0 {
		t.Errorf("got %d transactions and %d streams, want none: the transaction was delivered before",
			len(txs), len(d.streams))
	}
}

func TestDecodeStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		msgs    [][]byte
		wantErr string
	}{
		{"segment without the first", [][]byte{streamStartMsg(5, false)}, "first segment never arrived"},
		{"first segment twice", [][]byte{
			streamStartMsg(5, true), streamStopMsg(), streamStartMsg(5, true),
		}, "starts a second time"},
		{"stop without start", [][]byte{streamStopMsg()}, "without a stream start"},
		{"commit without stream", [][]byte{streamCommitMsg(5, 0x10, 0x18)}, "never arrived"},
		{
			"stream inside a transaction",
			[][]byte{beginMsg(0x10, 1), streamStartMsg(5, true)},
			"inside another transaction",
		},
		{"truncated change inside the stream", [][]byte{
			relationMsg(9, "t", 'd', "v"), streamStartMsg(5, true),
			inStream(5, insertMsg(9, "t:1", "t:a"))[:12], streamStopMsg(),
			streamCommitMsg(5, 0x10, 0x18),
		}, "streamed transaction 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := testDecoder()
			t.Cleanup(d.close)
			err := decodeUntilError(d, tt.msgs)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeStreamSpillDirMissing(t *testing.T) {
	d, _ := testDecoder()
	t.Cleanup(d.close)
	d.spillDir = t.TempDir() + "/missing"
	_, err := decodeOne(d, streamStartMsg(5, true))
	if err == nil || !strings.Contains(err.Error(), "source.spill_dir") {
		t.Errorf("error = %v, want one that names source.spill_dir", err)
	}
}

func TestSpillWriteErrorNamesFullDisk(t *testing.T) {
	s := &spill{xid: 7, bytes: 100}
	err := s.writeError(fmt.Errorf("write /tmp/x: %w", syscall.ENOSPC))
	if !strings.Contains(err.Error(), "free space in source.spill_dir") {
		t.Errorf("error = %v, want the fix for a full disk", err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Error("the error does not wrap ENOSPC")
	}
}

// FuzzDecodeStreamed decodes arbitrary bytes as a message inside a streamed transaction,
// which is parsed only at StreamCommit, with the xid that such messages carry.
func FuzzDecodeStreamed(f *testing.F) {
	seeds := [][]byte{
		inStream(5, insertMsg(16384, "t:1", "t:x")),
		inStream(6, insertMsg(16384, "t:1", "u")),
		inStream(5, relationMsg(16384, "t", 'd', "name")),
		inStream(5, contextMsg(true, "changesync", `{"user":"a"}`)),
		inStream(5, newMsg('T').u32(1).u8(0).u32(16384).b)[:8],
		{'U', 0, 0, 0, 5},
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		d, _ := testDecoder()
		defer d.close()
		msgs := [][]byte{
			relationMsg(16384, "t", 'd', "name"), streamStartMsg(5, true), data,
			streamStopMsg(), streamAbortMsg(5, 6), streamCommitMsg(5, 0x200, 0x208),
		}
		var txs []*change.Tx
		var err error
		for _, m := range msgs {
			err = d.decode(context.Background(), m, func(tx *change.Tx) error {
				txs = append(txs, tx)
				return nil
			})
			if err != nil {
				break
			}
		}
		if err == nil && (len(txs) != 1 || txs[0].More) {
			t.Fatalf("decoded %d transactions without an error, want the one committed whole", len(txs))
		}
		for _, tx := range txs {
			for _, ev := range tx.Events {
				if err := ev.Relation.Validate(ev.New); err != nil {
					t.Errorf("event with a tuple that does not fit its relation: %v", err)
				}
			}
		}
		if d.inTransaction() && err == nil {
			t.Error("the decoder is still in a transaction after the stream commit")
		}
	})
}
