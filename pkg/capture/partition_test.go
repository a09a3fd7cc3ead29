package capture

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/datasense/changesync/pkg/change"
)

func deleteKeyMsg(oid uint32, vals ...string) []byte {
	return newMsg('D').u32(oid).u8('K').tuple(vals...).b
}

// partitionedDecoder returns a decoder for which relation 9, public.m (id, region, v),
// is partitioned by region with the primary key (id, region).
func partitionedDecoder(t *testing.T) *decoder {
	t.Helper()
	d, _ := testDecoder()
	d.partitions = func(_ context.Context, rel *change.Relation) (*partitioning, error) {
		if rel.OID != 9 {
			return nil, nil
		}
		return newPartitioning(rel, []string{"region"}, []string{"id", "region"}), nil
	}
	feed(t, d, relationMsg(9, "m", 'd', "region", "v"), relationMsg(10, "other", 'd', "v"))
	return d
}

// summary returns each event as its op and the texts of its old and new tuples.
func summary(txs ...*change.Tx) []string {
	var out []string
	for _, tx := range txs {
		for _, ev := range tx.Events {
			s := string(ev.Op)
			if ev.Old != nil {
				s += " " + ev.Relation.Table.Name + " old=" + strings.Join(values(ev.Old), ",")
			}
			if ev.New != nil {
				s += " new=" + strings.Join(values(ev.New), ",")
			}
			out = append(out, s)
		}
	}
	return out
}

func TestDecodePartitionMove(t *testing.T) {
	tests := []struct {
		name string
		msgs [][]byte
		want []string
	}{
		{
			"move joins into one update",
			[][]byte{deleteKeyMsg(9, "t:1", "t:eu", "n"), insertMsg(9, "t:1", "t:us", "t:x")},
			[]string{"update m old=1,eu,<absent> new=1,us,x"},
		},
		{
			"relation message between joins",
			[][]byte{
				deleteKeyMsg(9, "t:1", "t:eu", "n"), relationMsg(9, "m", 'd', "region", "v"),
				insertMsg(9, "t:1", "t:us", "t:x"),
			},
			[]string{"update m old=1,eu,<absent> new=1,us,x"},
		},
		{
			"changed columns between stay apart",
			[][]byte{
				deleteKeyMsg(9, "t:1", "t:eu", "n"), relationMsg(9, "m", 'd', "region", "v", "added"),
				insertMsg(9, "t:1", "t:us", "t:x", "t:y"),
			},
			[]string{"delete m old=1,eu,<absent>", "insert new=1,us,x,y"},
		},
		{
			"other id stays apart",
			[][]byte{deleteKeyMsg(9, "t:1", "t:eu", "n"), insertMsg(9, "t:2", "t:us", "t:x")},
			[]string{"delete m old=1,eu,<absent>", "insert new=2,us,x"},
		},
		{
			"same partition stays apart",
			[][]byte{deleteKeyMsg(9, "t:1", "t:eu", "n"), insertMsg(9, "t:1", "t:eu", "t:x")},
			[]string{"delete m old=1,eu,<absent>", "insert new=1,eu,x"},
		},
		{
			"change between stays apart",
			[][]byte{
				deleteKeyMsg(9, "t:1", "t:eu", "n"), insertMsg(10, "t:5", "t:y"),
				insertMsg(9, "t:1", "t:us", "t:x"),
			},
			[]string{"delete m old=1,eu,<absent>", "insert new=5,y", "insert new=1,us,x"},
		},
		{
			"table not partitioned stays apart",
			[][]byte{deleteKeyMsg(10, "t:1", "n"), insertMsg(10, "t:1", "t:y")},
			[]string{"delete other old=1,<absent>", "insert new=1,y"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := partitionedDecoder(t)
			msgs := append([][]byte{beginMsg(0x10, 1)}, tt.msgs...)
			txs := feed(t, d, append(msgs, commitMsg(0x10, 0x18))...)
			if got := summary(txs...); !slices.Equal(got, tt.want) {
				t.Errorf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodePartitionMoveAcrossPartBoundary(t *testing.T) {
	d := partitionedDecoder(t)
	d.partEvents = 2
	txs := feed(t, d,
		beginMsg(0x10, 1),
		insertMsg(10, "t:5", "t:y"),
		deleteKeyMsg(9, "t:1", "t:eu", "n"),
		insertMsg(9, "t:1", "t:us", "t:x"),
		deleteKeyMsg(9, "t:2", "t:eu", "n"),
		deleteKeyMsg(9, "t:3", "t:eu", "n"),
		deleteKeyMsg(9, "t:4", "t:eu", "n"),
		commitMsg(0x10, 0x18),
	)
	want := []string{
		"insert new=5,y",
		"update m old=1,eu,<absent> new=1,us,x",
		"delete m old=2,eu,<absent>",
		"delete m old=3,eu,<absent>",
		"delete m old=4,eu,<absent>",
	}
	if got := summary(txs...); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	if len(txs) < 2 {
		t.Fatalf("parts = %d, want the transaction cut into parts", len(txs))
	}
	seq := 0
	for i, part := range txs {
		if len(part.Events) > d.partEvents {
			t.Errorf("part %d has %d changes, more than %d", i, len(part.Events), d.partEvents)
		}
		if part.FirstSeq != seq {
			t.Errorf("part %d starts at change %d, want %d", i, part.FirstSeq, seq)
		}
		seq += len(part.Events)
	}
}
