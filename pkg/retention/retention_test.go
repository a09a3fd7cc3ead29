package retention

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// seed writes change events of several ages and statuses, each synced one with its
// sync_log row, one undone change with its undo request, and old and new notifications.
const seed = `
INSERT INTO change_events (id, pipeline, thread_id, seq, row_key, table_name, change_type, detected_at,
	status, source_lsn, xid, commit_time)
SELECT md5(k)::uuid, 'p', md5(k)::uuid, 0, k, 'public.t', 'update', now() - age::interval, status::change_status,
	1, 1, now()
FROM (VALUES
	('old-synced', '100 days', 'synced'), ('old-rejected', '100 days', 'rejected'),
	('old-held', '100 days', 'held'), ('old-blocked', '100 days', 'blocked'),
	('undoable', '40 days', 'synced'), ('recent-skipped', '40 days', 'skipped'),
	('new', '1 day', 'synced'), ('old-undone', '100 days', 'undone'),
	('other-pipeline', '100 days', 'synced')) v(k, age, status);
UPDATE change_events SET pipeline = 'other' WHERE row_key = 'other-pipeline';
INSERT INTO sync_log (change_event_id, source_table, target_table, source_id, diff, synced_at, performed_by, op)
SELECT id, 'public.t', 'public.t', row_key, '{}', detected_at, 'x', 'update' FROM change_events
WHERE status IN ('synced', 'undone');
INSERT INTO undo_requests (request_id, change_event, requestor, reason, status)
SELECT gen_random_uuid(), id, 'x', 'y', 'applied' FROM change_events WHERE row_key = 'old-undone';
INSERT INTO outbox (event_type, payload, created_at, delivered_at) VALUES
	('sync', '{}', now() - interval '30 days', now() - interval '30 days'),
	('sync', '{}', now(), now()),
	('hold', '{}', now() - interval '30 days', NULL);`

func TestRetentionKeepsWhatIsStillNeeded(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	if err := store.Migrate(ctx, url, "changesync"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, "changesync")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Pool.Exec(ctx, seed); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	job, err := New(st, config.Retention{
		Audit: 30 * 24 * time.Hour, UndoHorizon: 60 * 24 * time.Hour,
		Outbox: 7 * 24 * time.Hour, Interval: time.Hour,
	}, "p", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	counts, err := job.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{ChangeEvents: 4, SyncLog: 2, UndoRequests: 1, Outbox: 1}
	if counts != want {
		t.Errorf("deleted %+v, want %+v", counts, want)
	}

	rows, err := st.Pool.Query(ctx, "SELECT row_key FROM change_events ORDER BY row_key")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		kept = append(kept, k)
	}
	wantKept := []string{"new", "old-blocked", "old-held", "other-pipeline", "undoable"}
	if len(kept) != len(wantKept) {
		t.Fatalf("kept %v, want %v", kept, wantKept)
	}
	for i := range kept {
		if kept[i] != wantKept[i] {
			t.Errorf("kept %v, want %v", kept, wantKept)
			break
		}
	}
	if got := testutil.ToFloat64(job.deleted.WithLabelValues("change_events")); got != 4 {
		t.Errorf("changesync_retention_deleted_total{table=change_events} = %v, want 4", got)
	}

	// A second run finds nothing more.
	if counts, err := job.Once(ctx); err != nil || counts != (Counts{}) {
		t.Errorf("second run deleted %+v (%v), want nothing", counts, err)
	}
}
