package pipeline

import (
	"context"
	"slices"
	"testing"

	"github.com/datasense/changesync/pkg/change"
)

// runBatchTxs sends txs to batchTxs before any batch is taken, as under a backlog, and
// returns the batches it hands on, as the commit LSNs of their transactions.
func runBatchTxs(t *testing.T, maxEvents int, txs ...*change.Tx) [][]change.LSN {
	t.Helper()
	p := &Pipeline{cfg: Config{BatchMaxEvents: maxEvents}}
	in := make(chan *change.Tx, len(txs))
	for _, tx := range txs {
		in <- tx
	}
	batches := make(chan []*change.Tx)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.batchTxs(ctx, in, batches)
	}()
	defer func() {
		cancel()
		<-done
	}()

	var got [][]change.LSN
	for received := 0; received < len(txs); {
		batch := <-batches
		var lsns []change.LSN
		for _, tx := range batch {
			lsns = append(lsns, tx.CommitLSN)
		}
		got = append(got, lsns)
		received += len(batch)
	}
	return got
}

func txWithEvents(commit change.LSN, events int) *change.Tx {
	return &change.Tx{CommitLSN: commit, Events: make([]change.Event, events)}
}

func sameBatches(t *testing.T, got, want [][]change.LSN) {
	t.Helper()
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestBatchTxsFillsUpToMaxEvents(t *testing.T) {
	var txs []*change.Tx
	for i := range 7 {
		txs = append(txs, txWithEvents(change.LSN(100+i), 2))
	}
	// A batch takes whole transactions while it has fewer than 5 events.
	got := runBatchTxs(t, 5, txs...)
	sameBatches(t, got, [][]change.LSN{{100, 101, 102}, {103, 104, 105}, {106}})
}

func TestBatchTxsHandsPartsAlone(t *testing.T) {
	first := txWithEvents(100, 1)
	part1 := txWithEvents(200, 3)
	part1.More = true
	part2 := txWithEvents(200, 3)
	part2.More, part2.FirstSeq = true, 3
	last := txWithEvents(200, 1)
	last.FirstSeq = 6
	after := txWithEvents(300, 1)

	got := runBatchTxs(t, 100, first, part1, part2, last, after)
	sameBatches(t, got, [][]change.LSN{{100, 200}, {200}, {200}, {300}})
}
