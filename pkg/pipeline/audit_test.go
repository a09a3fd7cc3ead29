package pipeline_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/datasense/changesync/pkg/apply"
)

// syncBuffer is a bytes.Buffer that the pipeline's goroutines may write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSyncExcludedColumnsStayOutOfAudit(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE users (id int PRIMARY KEY, name text, password_hash text)",
		targetDDL: "CREATE TABLE users (id int PRIMARY KEY, name text)",
		specs:     []apply.TableSpec{{Source: table("public", "users"), Exclude: []string{"password_hash"}}},
	})
	e.exec(`ALTER TABLE users REPLICA IDENTITY FULL;
		INSERT INTO users VALUES (1, 'ann', 'secret-1');
		UPDATE users SET password_hash = 'secret-2', name = 'anne' WHERE id = 1;
		DELETE FROM users WHERE id = 1`)
	e.sync()
	e.wantRows("SELECT count(*) FROM changesync.change_events WHERE table_name = 'public.users'", "3")
	e.wantRows(`SELECT count(*) FROM changesync.change_events
		WHERE coalesce(old_data::text, '') || coalesce(new_data::text, '') LIKE '%secret%'`, "0")
	e.wantRows(`SELECT count(*) FROM changesync.sync_log WHERE diff::text LIKE '%secret%'`, "0")
	e.wantRows(`SELECT new_data->>'name' FROM changesync.change_events
		WHERE table_name = 'public.users' AND change_type = 'update'`, "anne")
}

func TestSyncLogsChangesNotSynced(t *testing.T) {
	var logs syncBuffer
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, v text)",
		specs:     []apply.TableSpec{{Source: table("public", "items"), Truncate: "apply"}},
		policy:    apply.Policy{OnMissingRow: apply.MissingRowFail},
		log:       slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	e.exec(`INSERT INTO items VALUES (1, 'a'), (2, 'b')`)
	e.sync()
	e.execOn(e.dst, "DELETE FROM items WHERE id = 2")
	e.exec(`UPDATE items SET v = 'c' WHERE id = 2`)
	e.sync()

	e.wantRows(`SELECT status FROM changesync.change_events WHERE change_type = 'update' AND row_key = '2'`, "failed")
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"change not synced"`) {
			line = l
		}
	}
	for _, want := range []string{`"level":"WARN"`, `"table":"public.items"`, `"row_key":"2"`, `"status":"failed"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %s", line, want)
		}
	}

	// An applied TRUNCATE has its sync_log row too.
	e.exec(`TRUNCATE items`)
	e.sync()
	e.wantRows(`SELECT l.diff::text FROM changesync.sync_log l JOIN changesync.change_events c
		ON c.id = l.change_event_id WHERE c.change_type = 'truncate'`, "{}")
	e.wantRows("SELECT count(*) FROM items", "0")
}

func TestSyncRecordsChangeTargetRejects(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, qty int, note text)",
		targetDDL: "CREATE TABLE items (id int PRIMARY KEY, qty int CONSTRAINT qty_small CHECK (qty < 100), note text)",
		specs:     []apply.TableSpec{{Source: table("public", "items")}},
	})
	e.exec(`INSERT INTO items VALUES (1, 1, 'a'), (2, 500, 'too many'), (3, 3, 'c')`)
	e.exec(`UPDATE items SET note = 'c2' WHERE id = 3`)
	e.sync()

	e.wantRows("SELECT id, qty, note FROM items ORDER BY id", "1 | 1 | a", "3 | 3 | c2")
	e.wantRows(`SELECT row_key, status, error LIKE '%qty_small%' FROM changesync.change_events
		WHERE table_name = 'public.items' ORDER BY source_lsn, seq`,
		"1 | synced | ∅", "2 | failed | t", "3 | synced | ∅", "3 | synced | ∅")

	// Later batches go back to the fast path.
	e.exec(`INSERT INTO items VALUES (4, 4, 'd')`)
	e.sync()
	e.sameRows("SELECT * FROM items WHERE id <> 2 ORDER BY id")
}
