package undo_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/undo"
)

// BenchmarkUndoTransaction10k undoes one source transaction of 10,000 updates. The sync
// of each transaction runs outside the timer.
func BenchmarkUndoTransaction10k(b *testing.B) {
	e := newEnv(b, `CREATE TABLE items (id int PRIMARY KEY, v int, note text)`, "", tableSpec("items"))
	e.exec(`INSERT INTO items SELECT i, 0, 'n' || i FROM generate_series(1, 10000) i`)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		e.exec(fmt.Sprintf(`UPDATE items SET v = %d`, i+1))
		thread := e.one(`SELECT thread_id FROM changesync.change_events
			WHERE table_name = 'public.items' ORDER BY source_lsn DESC LIMIT 1`)
		b.StartTimer()

		res, err := e.ex.Execute(context.Background(), undo.Request{
			ThreadID: uuid.MustParse(thread), Requestor: "bench", Reason: "benchmark",
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Changes) != 10000 {
			b.Fatalf("undid %d changes, want 10000", len(res.Changes))
		}
	}
}
