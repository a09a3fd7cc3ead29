package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/store"
)

var benchRel = &change.Relation{
	OID: 2, Table: change.TableName{Schema: "public", Name: "bench"}, ReplicaIdentity: 'd',
	Columns: []change.Column{{Name: "id", Key: true}, {Name: "v"}, {Name: "pad"}},
}

// BenchmarkCommitBatch measures commitBatch on batches of single-row UPDATE transactions
// of random rows of a 100,000-row table, the shape of csbench's "single-row UPDATE
// transactions" backlog. Each change reads its target row, updates it and writes a
// change_events and a sync_log row.
func BenchmarkCommitBatch(b *testing.B) {
	for _, txs := range []int{256, 2048} {
		b.Run(fmt.Sprintf("txs=%d", txs), func(b *testing.B) { benchmarkCommitBatch(b, txs) })
	}
}

func benchmarkCommitBatch(b *testing.B, batchTxs int) {
	const rows = 100000
	ctx := context.Background()
	url := pgtest.NewDB(b)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE bench (id int PRIMARY KEY, v int NOT NULL, pad text);
		INSERT INTO bench SELECT g, 0, md5(g::text) FROM generate_series(1, 100000) g`)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Migrate(ctx, url, "changesync"); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, url, "changesync")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := apply.New(ctx, st.Pool, []apply.TableSpec{{Source: benchRel.Table, Target: benchRel.Table}},
		apply.Policy{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := New(Config{Name: "bench", Slot: "bench"}, &scriptedSource{}, a, st)

	rng := rand.New(rand.NewPCG(1, 2))
	lsn := change.LSN(1 << 20)
	nextBatch := func() []*change.Tx {
		batch := make([]*change.Tx, batchTxs)
		for i := range batch {
			lsn += 0x100
			id := fmt.Sprint(rng.IntN(rows) + 1)
			ev := change.Event{Op: change.OpUpdate, Relation: benchRel, New: change.Tuple{
				change.TextValue(id), change.TextValue(fmt.Sprint(rng.IntN(1000000))),
				change.TextValue(fmt.Sprintf("%032x", rng.Uint64())),
			}}
			tx := &change.Tx{
				Xid: uint32(lsn >> 8), CommitLSN: lsn, EndLSN: lsn + 8,
				CommitTime: time.Unix(1700000000, 0).UTC(), Events: []change.Event{ev},
			}
			tx.Stamp("bench")
			batch[i] = tx
		}
		return batch
	}

	b.ReportAllocs()
	events := 0
	for b.Loop() {
		b.StopTimer()
		batch := nextBatch()
		b.StartTimer()
		if err := p.commitBatch(ctx, batch, false); err != nil {
			b.Fatal(err)
		}
		events += len(batch)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "changes/s")
}
