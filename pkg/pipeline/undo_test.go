package pipeline_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/metrics"
	"github.com/datasense/changesync/pkg/undo"
)

// An undo follows the write the target got, not the source operation.
func TestUndoFollowsAppliedWrite(t *testing.T) {
	spec := apply.TableSpec{Source: table("public", "c")}
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE c (id int PRIMARY KEY, name text)",
		specs:     []apply.TableSpec{spec},
	})
	e.execOn(e.dst, `INSERT INTO c VALUES (1, 'kept on the target')`)
	e.exec(`INSERT INTO c VALUES (1, 'from the source')`) // applied as an update
	e.exec(`INSERT INTO c VALUES (2, 'two')`)
	e.sync()
	e.execOn(e.dst, `DELETE FROM c WHERE id = 2`)
	e.exec(`UPDATE c SET name = 'two again' WHERE id = 2`) // applied as an insert
	e.sync()
	e.wantRows(`SELECT c.row_key, c.change_type, l.op FROM changesync.change_events c
		JOIN changesync.sync_log l ON l.change_event_id = c.id WHERE c.table_name = 'public.c'
		ORDER BY c.source_lsn, c.seq`, "1 | insert | update", "2 | insert | insert", "2 | update | insert")

	spec.Target = spec.Source
	outcomes, err := metrics.UndoOutcomes(prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	u, err := undo.New(undo.Config{Store: e.store, Tables: []apply.TableSpec{spec}}, undo.WithOutcomes(outcomes))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT id FROM changesync.change_events WHERE row_key = '1' AND table_name = 'public.c'`,
		`SELECT id FROM changesync.change_events WHERE row_key = '2' AND change_type = 'update'`,
	} {
		id := uuid.MustParse(e.targetRows(q)[0])
		if _, err := u.Execute(context.Background(), undo.Request{ChangeID: id, Reason: "test", Requestor: "t"}); err != nil {
			t.Fatalf("undo %s: %v", id, err)
		}
	}
	e.wantRows("SELECT * FROM c ORDER BY id", "1 | kept on the target")

	id := uuid.MustParse(e.targetRows(`SELECT id FROM changesync.change_events WHERE row_key = '1'
		AND table_name = 'public.c'`)[0])
	if _, err := u.Execute(context.Background(), undo.Request{ChangeID: id, Reason: "again", Requestor: "t"}); err == nil {
		t.Error("a second undo of the same change succeeded")
	}
	for outcome, want := range map[string]float64{"applied": 2, "refused": 1} {
		if got := testutil.ToFloat64(outcomes.WithLabelValues(outcome)); got != want {
			t.Errorf("undo requests %s = %v, want %v", outcome, got, want)
		}
	}
}
