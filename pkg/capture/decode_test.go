package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/datasense/changesync/pkg/change"
)

// Builders of pgoutput protocol version 1 messages, as the server sends them.

type msgBuilder struct{ b []byte }

func newMsg(kind byte) *msgBuilder { return &msgBuilder{b: []byte{kind}} }

func (m *msgBuilder) u8(v byte) *msgBuilder { m.b = append(m.b, v); return m }
func (m *msgBuilder) u16(v uint16) *msgBuilder {
	m.b = binary.BigEndian.AppendUint16(m.b, v)
	return m
}

func (m *msgBuilder) u32(v uint32) *msgBuilder {
	m.b = binary.BigEndian.AppendUint32(m.b, v)
	return m
}

func (m *msgBuilder) u64(v uint64) *msgBuilder {
	m.b = binary.BigEndian.AppendUint64(m.b, v)
	return m
}
func (m *msgBuilder) str(s string) *msgBuilder { m.b = append(append(m.b, s...), 0); return m }

// tuple appends TupleData. Each value is "n", "u", "b:<bytes>" or "t:<text>".
func (m *msgBuilder) tuple(vals ...string) *msgBuilder {
	m.u16(uint16(len(vals)))
	for _, v := range vals {
		kind, data, _ := strings.Cut(v, ":")
		m.u8(kind[0])
		if kind == "t" || kind == "b" {
			m.u32(uint32(len(data)))
			m.b = append(m.b, data...)
		}
	}
	return m
}

func beginMsg(finalLSN uint64, xid uint32) []byte {
	return newMsg('B').u64(finalLSN).u64(0).u32(xid).b
}

func commitMsg(commitLSN, endLSN uint64) []byte {
	return newMsg('C').u8(0).u64(commitLSN).u64(endLSN).u64(0).b
}

// relationMsg describes public.<name> with an int4 key column id and text columns.
func relationMsg(oid uint32, name string, identity byte, textColumns ...string) []byte {
	m := newMsg('R').u32(oid).str("public").str(name).u8(identity).u16(uint16(1 + len(textColumns)))
	m.u8(1).str("id").u32(23).u32(0xFFFFFFFF)
	for _, c := range textColumns {
		m.u8(0).str(c).u32(25).u32(0xFFFFFFFF)
	}
	return m.b
}

func insertMsg(oid uint32, vals ...string) []byte {
	return newMsg('I').u32(oid).u8('N').tuple(vals...).b
}

func contextMsg(transactional bool, prefix, content string) []byte {
	flag := byte(0)
	if transactional {
		flag = 1
	}
	m := newMsg('M').u8(flag).u64(0x100).str(prefix).u32(uint32(len(content)))
	m.b = append(m.b, content...)
	return m.b
}

// testDecoder returns a decoder without a catalog connection and a recorder of its logs.
func testDecoder(tables ...change.TableName) (*decoder, *logRecorder) {
	logs := &logRecorder{}
	keep := map[change.TableName]bool{}
	for _, t := range tables {
		keep[t] = true
	}
	return newDecoder("slot", keep, newTypeNames(nil), slog.New(logs), &atomic.Int64{}), logs
}

// feed decodes messages in order and returns the transactions they completed.
func feed(t *testing.T, d *decoder, msgs ...[]byte) []*change.Tx {
	t.Helper()
	var txs []*change.Tx
	for i, m := range msgs {
		err := d.decode(context.Background(), m, func(tx *change.Tx) error {
			txs = append(txs, tx)
			return nil
		})
		if err != nil {
			t.Fatalf("message %d (%c): %v", i, m[0], err)
		}
	}
	return txs
}

// decodeUntilError decodes msgs in order and returns the first error.
func decodeUntilError(d *decoder, msgs [][]byte) error {
	for _, m := range msgs {
		if _, err := decodeOne(d, m); err != nil {
			return err
		}
	}
	return nil
}

// decodeOne decodes one message and returns the last transaction or part it completed.
func decodeOne(d *decoder, m []byte) (*change.Tx, error) {
	var last *change.Tx
	err := d.decode(context.Background(), m, func(tx *change.Tx) error {
		last = tx
		return nil
	})
	return last, err
}

func TestDecodeTransaction(t *testing.T) {
	d, _ := testDecoder()
	txs := feed(t, d,
		relationMsg(16384, "t", 'd', "name"),
		beginMsg(0x200, 7),
		insertMsg(16384, "t:1", "t:a"),
		newMsg('U').u32(16384).u8('K').tuple("t:1", "n").u8('N').tuple("t:2", "u").b,
		newMsg('U').u32(16384).u8('O').tuple("t:2", "n").u8('N').tuple("t:2", "t:b").b,
		newMsg('D').u32(16384).u8('K').tuple("t:2", "n").b,
		newMsg('O').u64(0x50).str("origin_a").b,
		newMsg('Y').u32(70000).str("public").str("mood").b,
		commitMsg(0x200, 0x230),
	)

	if len(txs) != 1 {
		t.Fatalf("transactions = %d, want 1", len(txs))
	}
	tx := txs[0]
	if tx.Xid != 7 || tx.CommitLSN != 0x200 || tx.EndLSN != 0x230 {
		t.Errorf("xid %d, commit %s, end %s", tx.Xid, tx.CommitLSN, tx.EndLSN)
	}

	want := []struct {
		op      change.Op
		old     []string
		keyOnly bool
		new     []string
	}{
		{change.OpInsert, nil, false, []string{"1", "a"}},
		{change.OpUpdate, []string{"1", "<absent>"}, true, []string{"2", "<unchanged>"}},
		{change.OpUpdate, []string{"2", "<null>"}, false, []string{"2", "b"}},
		{change.OpDelete, []string{"2", "<absent>"}, true, nil},
	}
	if len(tx.Events) != len(want) {
		t.Fatalf("events = %d, want %d", len(tx.Events), len(want))
	}
	for i, w := range want {
		ev := tx.Events[i]
		if ev.Op != w.op || ev.OldKeyOnly != w.keyOnly ||
			!slices.Equal(values(ev.Old), w.old) || !slices.Equal(values(ev.New), w.new) {
			t.Errorf("event %d = %s old %q keyOnly %v new %q; want %s old %q keyOnly %v new %q",
				i, ev.Op, values(ev.Old), ev.OldKeyOnly, values(ev.New), w.op, w.old, w.keyOnly, w.new)
		}
	}
	if name, _ := d.types.name(context.Background(), 70000); name != "public.mood" {
		t.Errorf("type 70000 name = %q, want public.mood from the Type message", name)
	}
}

func TestDecodeRelationReplacedNotMutated(t *testing.T) {
	d, _ := testDecoder()
	txs := feed(t, d,
		relationMsg(16384, "t", 'd', "a"),
		beginMsg(0x200, 7),
		insertMsg(16384, "t:1", "t:x"),
		relationMsg(16384, "t", 'd', "a", "b"),
		insertMsg(16384, "t:2", "t:y", "t:z"),
		commitMsg(0x200, 0x230),
	)

	first, second := txs[0].Events[0].Relation, txs[0].Events[1].Relation
	if first == second {
		t.Fatal("both events share one relation, want a new one after the Relation message")
	}
	if len(first.Columns) != 2 || len(second.Columns) != 3 {
		t.Errorf("columns = %d and %d, want 2 and 3", len(first.Columns), len(second.Columns))
	}
	if first.Columns[0].TypeName != "int4" || !first.Columns[0].Key || first.Columns[1].Key {
		t.Errorf("first relation columns = %+v", first.Columns)
	}
}

func TestDecodeFiltersTables(t *testing.T) {
	d, _ := testDecoder(change.TableName{Schema: "public", Name: "kept"})
	txs := feed(t, d,
		relationMsg(1, "kept", 'd', "v"),
		relationMsg(2, "other", 'd', "v"),
		beginMsg(0x200, 7),
		insertMsg(2, "t:1", "t:a"),
		insertMsg(1, "t:2", "t:b"),
		newMsg('T').u32(2).u8(3).u32(2).u32(1).b,
		newMsg('T').u32(1).u8(0).u32(2).b,
		commitMsg(0x200, 0x230),
	)

	evs := txs[0].Events
	if len(evs) != 2 {
		t.Fatalf("events = %d, want the insert and one truncate of public.kept", len(evs))
	}
	if evs[0].Op != change.OpInsert || evs[0].Relation.Table.Name != "kept" {
		t.Errorf("event 0 = %s of %s", evs[0].Op, evs[0].Relation.Table)
	}
	if evs[1].Op != change.OpTruncate || len(evs[1].Truncated) != 1 ||
		!evs[1].TruncateCascade || !evs[1].TruncateRestart {
		t.Errorf("event 1 = %+v, want a cascade restart truncate of public.kept alone", evs[1])
	}
}

func TestDecodeContextMessages(t *testing.T) {
	d, logs := testDecoder()
	txs := feed(t, d,
		contextMsg(false, "changesync", `{"user":"outside"}`),
		beginMsg(0x200, 7),
		contextMsg(true, "changesync", `{"user":"alice","thread_id":"th"}`),
		contextMsg(true, "changesync_other", `{"user":"mallory"}`),
		contextMsg(true, "changesync", `{"user": 5}`),
		contextMsg(true, "changesync", `nope`),
		commitMsg(0x200, 0x230),
	)

	if txs[0].Actor != "alice" || txs[0].ContextThreadID != "th" {
		t.Errorf("actor %q, thread %q; want alice, th", txs[0].Actor, txs[0].ContextThreadID)
	}
	if n := logs.count("WARN ignoring malformed context message"); n != 1 {
		t.Errorf("warnings = %d, want 1 for two malformed messages", n)
	}
	if n := logs.count("DEBUG ignoring malformed context message"); n != 1 {
		t.Errorf("debug records = %d, want 1 for the second malformed message", n)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		msgs    [][]byte
		wantErr string
	}{
		{"column count differs", [][]byte{
			relationMsg(9, "t", 'd', "v"), beginMsg(1, 1),
			insertMsg(9, "t:1"),
		}, "relation public.t (oid 9) has 2 columns but the tuple has 1"},
		{"binary value", [][]byte{
			relationMsg(9, "t", 'd', "v"), beginMsg(1, 1),
			insertMsg(9, "t:1", "b:xx"),
		}, "binary option was not requested"},
		{"unknown value kind", [][]byte{
			relationMsg(9, "t", 'd', "v"), beginMsg(1, 1),
			insertMsg(9, "t:1", "z"),
		}, "unknown tuple value kind"},
		{
			"unknown relation",
			[][]byte{beginMsg(1, 1), insertMsg(9, "t:1")},
			"before its Relation message",
		},
		{
			"row outside transaction",
			[][]byte{relationMsg(9, "t", 'd'), insertMsg(9, "t:1")},
			"outside a transaction",
		},
		{"begin twice", [][]byte{beginMsg(1, 1), beginMsg(2, 2)}, "while xid 1 is open"},
		{"commit without begin", [][]byte{commitMsg(1, 2)}, "without a begin"},
		{"empty", [][]byte{{}}, "empty message"},
		{
			"truncated insert",
			[][]byte{newMsg('I').u32(9).u8('N').u16(1).u8('t').u32(1 << 30).b},
			"message ends early",
		},
		{
			"truncate count too large",
			[][]byte{newMsg('T').u32(1 << 30).u8(0).u32(1).b},
			"message ends early",
		},
		{"short begin", [][]byte{newMsg('B').u32(1).b}, "Begin"},
		{
			"relation without name end",
			[][]byte{newMsg('R').u32(1).str("public").u8('x').u8('y').b},
			"Relation",
		},
		{
			"relation shorter than its column count",
			[][]byte{newMsg('R').u32(1).str("public").str("t").u8('d').u16(5).b},
			"malformed",
		},
		{
			"message content past the end",
			[][]byte{newMsg('M').u8(1).u64(1).str("changesync").u32(99).u8('x').b},
			"malformed",
		},
		{"unknown message", [][]byte{{'Z', 1, 2}}, "decode pgoutput"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := testDecoder()
			err := decodeUntilError(d, tt.msgs)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeBinaryWrapsSentinel(t *testing.T) {
	d, _ := testDecoder()
	feed(t, d, relationMsg(9, "t", 'd', "v"), beginMsg(1, 1))
	_, err := decodeOne(d, insertMsg(9, "t:1", "b:xx"))
	if !errors.Is(err, errBinaryValue) {
		t.Errorf("error = %v, want errBinaryValue", err)
	}
}

func TestDecodeToleratesStreamMessages(t *testing.T) {
	d, _ := testDecoder()
	feed(t, d,
		newMsg('S').u32(7).u8(1).b,
		newMsg('E').b,
		newMsg('A').u32(7).u32(7).b,
	)
}

func TestTypeNamesCatalogFallback(t *testing.T) {
	var asked []uint32
	names := newTypeNames(func(_ context.Context, oid uint32) (string, error) {
		asked = append(asked, oid)
		return "pg_catalog.pg_lsn", nil
	})
	ctx := context.Background()

	for range 2 {
		if got, err := names.name(ctx, 3220); err != nil || got != "pg_catalog.pg_lsn" {
			t.Errorf("name(3220) = %q, %v", got, err)
		}
	}
	if got, _ := names.name(ctx, 23); got != "int4" {
		t.Errorf("name(23) = %q, want int4 from pgx's type map", got)
	}
	if !slices.Equal(asked, []uint32{3220}) {
		t.Errorf("catalog asked for %v, want 3220 once", asked)
	}
}

// FuzzDecode feeds arbitrary bytes as pgoutput messages to a decoder that has a relation
// and an open transaction, as in the middle of a stream. It must never panic.
func FuzzDecode(f *testing.F) {
	seeds := [][]byte{
		beginMsg(0x200, 7),
		commitMsg(0x200, 0x230),
		relationMsg(16384, "t", 'd', "name"),
		insertMsg(16384, "t:1", "t:a"),
		insertMsg(16384, "t:1", "n"),
		newMsg('U').u32(16384).u8('K').tuple("t:1", "n").u8('N').tuple("t:2", "u").b,
		newMsg('U').u32(16384).u8('N').tuple("t:2", "t:x").b,
		newMsg('D').u32(16384).u8('O').tuple("t:2", "n").b,
		newMsg('T').u32(1).u8(1).u32(16384).b,
		newMsg('Y').u32(70000).str("public").str("mood").b,
		newMsg('O').u64(1).str("o").b,
		contextMsg(true, "changesync", `{"user":"a"}`),
		newMsg('S').u32(7).u8(1).b,
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		d, _ := testDecoder()
		defer d.close()
		if _, err := decodeOne(d, relationMsg(16384, "t", 'd', "name")); err != nil {
			t.Fatal(err)
		}
		if _, err := decodeOne(d, beginMsg(0x200, 7)); err != nil {
			t.Fatal(err)
		}

		tx, err := decodeOne(d, data)
		if err != nil && tx != nil {
			t.Error("decode returned a transaction and an error")
		}
		if tx == nil {
			tx = d.tx // still open, or nil after an error
		}
		if tx == nil {
			return
		}
		for _, ev := range tx.Events {
			if err := ev.Relation.Validate(ev.New); err != nil {
				t.Errorf("event with a tuple that does not fit its relation: %v", err)
			}
		}
	})
}
