package undo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/undo"
)

// secondExecutor returns an executor on its own connection pool, as a second changesync
// process or API replica would have.
func (e *env) secondExecutor() *undo.Executor {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dstURL, "changesync")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(st.Close)
	ex, err := undo.New(undo.Config{Store: st})
	if err != nil {
		e.t.Fatal(err)
	}
	return ex
}

func TestUndoConcurrentRequestsUndoOnce(t *testing.T) {
	e := newEnv(t, customersDDL, "", customers())
	e.exec(`INSERT INTO customers VALUES (1, 'a', '11111', NULL)`)
	e.exec(`UPDATE customers SET address = 'b' WHERE id = 1`)
	id := e.changeID("public.customers", "1", change.OpUpdate)
	executors := []*undo.Executor{e.ex, e.secondExecutor()}

	for round := range 5 {
		if round > 0 {
			// Sync a new change to race on.
			e.exec(fmt.Sprintf(`UPDATE customers SET address = 'r%d' WHERE id = 1`, round))
			id = e.changeID("public.customers", "1", change.OpUpdate)
		}
		errs := make([]error, len(executors))
		var wg sync.WaitGroup
		for i, ex := range executors {
			wg.Go(func() {
				_, errs[i] = ex.Execute(context.Background(), request(id))
			})
		}
		wg.Wait()

		succeeded := 0
		for _, err := range errs {
			switch {
			case err == nil:
				succeeded++
			case !errors.Is(err, undo.ErrAlreadyUndone):
				t.Errorf("round %d: Execute error = %v, want nil or ErrAlreadyUndone", round, err)
			}
		}
		if succeeded != 1 {
			t.Errorf("round %d: %d requests succeeded, want exactly 1", round, succeeded)
		}
		e.wantRows(`SELECT count(*) FROM changesync.undo_requests
			WHERE status = 'applied' AND change_event = '`+id+`'`, "1")
	}
}

// TestUndoRacesApplier undoes one synced update per row while the source keeps writing
// every fourth row. An undo either takes the row lock first and restores the old value,
// or it finds the later value and reports a conflict. It never overwrites a value synced
// after it read the row. The next source change of an undone row writes v again, because
// the applier writes every column that differs from the source.
func TestUndoRacesApplier(t *testing.T) {
	const rowCount = 40
	e := newEnv(t, `CREATE TABLE items (id int PRIMARY KEY, v text, w int)`, "",
		tableSpec("items"))
	e.exec(fmt.Sprintf(`INSERT INTO items SELECT i, 'a', 0 FROM generate_series(1, %d) i`, rowCount))
	e.exec(`UPDATE items SET v = 'b'`)
	ids := rows(t, e.dst, `SELECT id FROM changesync.change_events
		WHERE table_name = 'public.items' AND change_type = 'update' ORDER BY row_key::int`)

	// The source writes v = 'c' and w of random rows among every fourth one while the
	// undos run.
	ctx, cancel := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- e.writeUntilCancelled(ctx, rowCount)
	}()

	conflicts := 0
	for i, id := range ids {
		res, err := e.ex.Execute(context.Background(), request(id))
		switch {
		case err == nil:
			if d := res.Changes[0].Diff["v"]; d.Old == nil || *d.Old != "b" {
				t.Errorf("undo of row %d overwrote %s, want b", i+1, show(d.Old))
			}
		case undo.IsConflict(err):
			conflicts++
			if (i+1)%4 != 0 {
				t.Errorf("undo of row %d, which the source does not write, met conflicts %s", i+1,
					show(res.Conflicts))
			}
		default:
			t.Errorf("undo of row %d: %v", i+1, err)
		}
	}
	cancel()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	e.sync()

	// Rows the source set to c end as c, in either order. The others end as a, undone.
	want := rows(t, e.src, `SELECT id, CASE WHEN v = 'c' THEN 'c' ELSE 'a' END, w FROM items ORDER BY id`)
	got := rows(t, e.dst, `SELECT id, v, w FROM items ORDER BY id`)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target row %s, want %s", got[i], want[i])
		}
	}
	t.Logf("%d of %d undos met a later synced change", conflicts, len(ids))
}

// writeUntilCancelled updates rows of items on the source in small transactions until
// ctx ends.
func (e *env) writeUntilCancelled(ctx context.Context, rowCount int) error {
	for ctx.Err() == nil {
		id := 4 * (rand.IntN(rowCount/4) + 1)
		sql := fmt.Sprintf(`UPDATE items SET v = 'c', w = w + 1 WHERE id = %d`, id)
		if _, err := e.src.Exec(context.Background(), sql); err != nil {
			return fmt.Errorf("source write: %w", err)
		}
	}
	return nil
}

func tableSpec(name string) apply.TableSpec {
	return apply.TableSpec{Source: change.TableName{Schema: "public", Name: name}}
}
