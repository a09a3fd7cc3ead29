package pipeline_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/metrics"
)

func TestMetricsAfterKnownWorkload(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewPipeline(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, price int, note text)",
		specs:     []apply.TableSpec{{Source: table("public", "items")}},
		validator: holdChecks{},
		metrics:   m,
	})
	e.exec(`INSERT INTO items SELECT g, g, 'n' FROM generate_series(1, 10) g;
		UPDATE items SET note = 'CHECK' WHERE id = 1;
		UPDATE items SET price = 0, note = 'n2' WHERE id = 1;
		DELETE FROM items WHERE id = 10`)
	e.sync()

	source, err := pgxpool.New(context.Background(), e.srcURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(source.Close)
	reg.MustRegister(metrics.NewCollector("test", e.slot(), source, e.store.Pool, e.reader, slog.Default()))

	want := `
# HELP changesync_pending_changes Changes waiting for a person: held, and blocked behind a held change of their row.
# TYPE changesync_pending_changes gauge
changesync_pending_changes{pipeline="test",status="blocked"} 1
changesync_pending_changes{pipeline="test",status="held"} 1
# HELP changesync_slot_wal_status 1 for the slot's current wal_status (reserved, extended, unreserved or lost).
# TYPE changesync_slot_wal_status gauge
changesync_slot_wal_status{pipeline="test",status="reserved"} 1
`
	err = testutil.GatherAndCompare(reg, strings.NewReader(want),
		"changesync_pending_changes", "changesync_slot_wal_status")
	if err != nil {
		t.Error(err)
	}
	// The marker table's changes count too, so only the items table is compared.
	for status, want := range map[string]float64{"synced": 11, "held": 1, "blocked": 1} {
		if got := changesOf(t, reg, "public.items", status); got != want {
			t.Errorf("%s changes of public.items = %v, want %v", status, got, want)
		}
	}
	if n := testutil.CollectAndCount(reg, "changesync_apply_batch_seconds"); n != 1 {
		t.Errorf("changesync_apply_batch_seconds series = %d, want 1", n)
	}
}

// changesOf returns the value of changesync_changes_total for a table and status.
func changesOf(t *testing.T, reg *prometheus.Registry, table, status string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "changesync_changes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["table"] == table && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
