package pipeline_test

import (
	"slices"
	"testing"

	"github.com/datasense/changesync/pkg/apply"
)

func TestSyncLargeTransactionInParts(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL:  "CREATE TABLE c (id int PRIMARY KEY, v int, note text)",
		specs:      []apply.TableSpec{{Source: table("public", "c")}},
		partEvents: 100,
	})
	e.exec(`INSERT INTO c SELECT g, 0, 'start' FROM generate_series(1, 1000) g`)
	// Savepoints rolled back inside a large transaction, and an aborted one, leave no trace.
	e.exec(`BEGIN;
		UPDATE c SET v = v + 1;
		SAVEPOINT s1;
		UPDATE c SET note = 'rolled back' WHERE id <= 500;
		ROLLBACK TO SAVEPOINT s1;
		INSERT INTO c SELECT g, 2, 'inserted' FROM generate_series(1001, 1250) g;
		DELETE FROM c WHERE id % 10 = 0;
		COMMIT;
		BEGIN;
		UPDATE c SET note = 'aborted';
		ROLLBACK;
		UPDATE c SET v = 7 WHERE id = 1`)
	e.sync()
	e.sameRows("SELECT * FROM c ORDER BY id")
	e.wantRows(`SELECT count(*), count(DISTINCT id), count(DISTINCT thread_id) FROM changesync.change_events
		WHERE table_name = 'public.c'`, "2376 | 2376 | 3")
	e.wantRows("SELECT count(*) FROM changesync.change_events WHERE new_data->>'note' IN ('rolled back', 'aborted')", "0")
	// The large and the aborted transaction outgrew logical_decoding_work_mem, so the
	// server streamed them while in progress.
	if got := rows(t, e.src, `SELECT stream_txns >= 2 FROM pg_stat_replication_slots
		WHERE slot_name = current_database()`); !slices.Equal(got, []string{"t"}) {
		t.Errorf("streamed transactions >= 2: %q, want t", got)
	}
}

func TestSyncLargeTransactionTargetRejects(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL:  "CREATE TABLE c (id int PRIMARY KEY, v int)",
		targetDDL:  "CREATE TABLE c (id int PRIMARY KEY, v int CONSTRAINT small CHECK (v < 1000))",
		specs:      []apply.TableSpec{{Source: table("public", "c")}},
		partEvents: 50,
	})
	// The rejected row sits in a later part, after earlier parts were written.
	e.exec(`INSERT INTO c SELECT g, CASE WHEN g = 420 THEN 5000 ELSE g END FROM generate_series(1, 500) g`)
	e.exec(`UPDATE c SET v = 1 WHERE id = 1`)
	e.sync()
	e.sameRows("SELECT * FROM c WHERE id <> 420 ORDER BY id")
	e.wantRows("SELECT count(*) FROM c WHERE id = 420", "0")
	e.wantRows(`SELECT row_key, status FROM changesync.change_events WHERE status <> 'synced'`, "420 | failed")
	e.wantRows(`SELECT count(*) FROM changesync.change_events WHERE table_name = 'public.c'`, "501")
}
