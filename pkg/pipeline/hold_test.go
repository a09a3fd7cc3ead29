package pipeline_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/undo"
	"github.com/datasense/changesync/pkg/validate"
)

// holdChecks holds every change that sets the note column to CHECK.
type holdChecks struct{}

func (holdChecks) Validate(_ context.Context, _ *change.Tx, ev *change.Event) change.Decision {
	if i := ev.Relation.ColumnIndex("note"); i >= 0 && len(ev.New) > i && ev.New[i].Text == "CHECK" {
		return change.Decision{Verdict: change.Hold, Reason: "needs a check", DecidedBy: "rule:check"}
	}
	return change.Decision{Verdict: change.Approve, Reason: "ok", DecidedBy: "rule:none"}
}

func startHoldSync(t *testing.T) *syncEnv {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, price int, note text)",
		specs:     []apply.TableSpec{{Source: table("public", "items")}},
		validator: holdChecks{},
	})
	e.exec(`INSERT INTO items VALUES (1, 10, 'a'), (2, 20, 'b')`)
	e.sync()
	e.exec(`UPDATE items SET price = 500, note = 'CHECK' WHERE id = 1`) // held
	e.exec(`UPDATE items SET note = 'a2' WHERE id = 1`)                 // blocked
	e.exec(`UPDATE items SET note = 'a3', price = 50 WHERE id = 1`)
	e.exec(`UPDATE items SET note = 'b2' WHERE id = 2`) // another row: applied at once
	e.sync()
	e.wantRows("SELECT * FROM items ORDER BY id", "1 | 10 | a", "2 | 20 | b2")
	e.wantRows(`SELECT status, decided_by FROM changesync.change_events WHERE row_key = '1'
		AND table_name = 'public.items' AND change_type = 'update' ORDER BY source_lsn, seq`,
		"held | rule:check", "blocked | changesync:order", "blocked | changesync:order")
	return e
}

func heldChange(t *testing.T, e *syncEnv) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(e.targetRows(`SELECT id FROM changesync.change_events WHERE status = 'held'`)[0])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestReleaseApprovedHeldChangeThenBlocked(t *testing.T) {
	e := startHoldSync(t)
	id := heldChange(t, e)
	res, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: id, Approve: true, By: "alice", Reason: "price checked"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Released) != 1 || len(res.Applied) != 2 || res.Blocked != 0 {
		t.Errorf("result = %+v, want 1 released, 2 applied, 0 blocked", res)
	}
	e.sameRows("SELECT * FROM items ORDER BY id")
	e.wantRows(`SELECT status, decided_by FROM changesync.change_events WHERE row_key = '1'
		AND table_name = 'public.items' AND change_type = 'update' ORDER BY source_lsn, seq`,
		"synced | alice", "synced | changesync:order", "synced | changesync:order")
	e.wantRows(`SELECT count(*) FROM changesync.sync_log WHERE source_id = '1'
		AND source_table = 'public.items'`, "4")

	// New changes of the row apply at once again.
	e.exec(`UPDATE items SET note = 'a4' WHERE id = 1`)
	e.sync()
	e.sameRows("SELECT * FROM items ORDER BY id")

	_, err = pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: id, Approve: true, By: "alice"})
	if !errors.Is(err, pipeline.ErrNotHeld) {
		t.Errorf("second release: %v, want ErrNotHeld", err)
	}
}

func TestReleaseRejectedHeldChangeAppliesBlocked(t *testing.T) {
	e := startHoldSync(t)
	id := heldChange(t, e)
	res, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: id, Approve: false, By: "bob", Reason: "typo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Released) != 1 || len(res.Applied) != 2 {
		t.Errorf("result = %+v, want 1 released and 2 applied", res)
	}
	// Without the held change: note a3 and price 50 from the last change.
	e.wantRows("SELECT * FROM items ORDER BY id", "1 | 50 | a3", "2 | 20 | b2")
	e.wantRows(`SELECT status FROM changesync.change_events WHERE id = '`+id.String()+`'`, "rejected")
}

func TestReleaseConcurrentlyAppliesOnce(t *testing.T) {
	e := startHoldSync(t)
	id := heldChange(t, e)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pipeline.Release(context.Background(), e.store, e.applier, "test",
				pipeline.ReleaseRequest{ChangeID: id, Approve: true, By: "carol"})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, pipeline.ErrNotHeld):
			t.Errorf("release: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d releases succeeded, want 1", ok)
	}
	e.wantRows(`SELECT count(*) FROM changesync.sync_log WHERE source_id = '1'
		AND source_table = 'public.items'`, "4")
	e.sameRows("SELECT * FROM items ORDER BY id")
}

func TestReleaseErrors(t *testing.T) {
	e := startHoldSync(t)
	ctx := context.Background()
	_, err := pipeline.Release(ctx, e.store, e.applier, "test", pipeline.ReleaseRequest{ChangeID: uuid.New(), By: "x"})
	if !errors.Is(err, pipeline.ErrNotHeld) || err == nil {
		t.Errorf("unknown change: %v, want ErrNotHeld naming it", err)
	}
	synced := e.targetRows(`SELECT id FROM changesync.change_events WHERE status = 'synced' LIMIT 1`)[0]
	_, err = pipeline.Release(ctx, e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: uuid.MustParse(synced), By: "x"})
	if err == nil || !errors.Is(err, pipeline.ErrNotHeld) {
		t.Errorf("synced change: %v, want ErrNotHeld saying it is synced", err)
	}
	if _, err := pipeline.Release(ctx, e.store, e.applier, "test", pipeline.ReleaseRequest{By: "x"}); err == nil {
		t.Error("a request without change or thread was accepted")
	}
	if _, err := pipeline.Release(ctx, e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: heldChange(t, e)}); err == nil {
		t.Error("a request without a decider was accepted")
	}
}

func TestBulkGuardHoldsAndReleasesTransaction(t *testing.T) {
	cfg, err := config.Parse([]byte(`
source: {url: "postgres://unused@127.0.0.1/src"}
target: {url: "postgres://unused@127.0.0.1/dst"}
tables: [{source: public.items}]
guard: {max_rows_per_tx: 1000}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	agent, err := validate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, v int)",
		specs:     []apply.TableSpec{{Source: table("public", "items")}},
		validator: agent,
	})
	e.exec(`INSERT INTO items SELECT g, 0 FROM generate_series(1, 500) g`)
	e.sync()
	e.exec(`INSERT INTO items SELECT g, 1 FROM generate_series(501, 5500) g`) // 5,000 rows: held
	e.exec(`UPDATE items SET v = 2 WHERE id = 600`)                           // blocked behind it
	e.exec(`UPDATE items SET v = 3 WHERE id = 1`)                             // applied at once
	e.sync()
	e.wantRows("SELECT count(*), sum(v) FROM items", "500 | 3")
	e.wantRows(`SELECT status, decided_by, count(*) FROM changesync.change_events
		WHERE table_name = 'public.items' AND status <> 'synced' GROUP BY 1, 2 ORDER BY 1`,
		"held | guard:bulk | 5000", "blocked | changesync:order | 1")

	thread := uuid.MustParse(e.targetRows(`SELECT DISTINCT thread_id FROM changesync.change_events
		WHERE status = 'held'`)[0])
	res, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ThreadID: thread, Approve: true, By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Released) != 5000 || len(res.Applied) != 1 {
		t.Errorf("released %d and applied %d, want 5000 and 1", len(res.Released), len(res.Applied))
	}
	e.sameRows("SELECT * FROM items ORDER BY id")
}

func TestReleaseHeldTruncate(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, v int)",
		specs:     []apply.TableSpec{{Source: table("public", "items"), Truncate: "hold"}},
	})
	e.exec(`INSERT INTO items VALUES (1, 1), (2, 2)`)
	e.sync()
	e.exec(`TRUNCATE items; INSERT INTO items VALUES (3, 3)`)
	e.sync()
	e.wantRows("SELECT id FROM items ORDER BY id", "1", "2")
	e.wantRows(`SELECT change_type, status FROM changesync.change_events
		WHERE table_name = 'public.items' AND status <> 'synced' ORDER BY source_lsn, seq`,
		"truncate | held", "insert | blocked")

	res, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: heldChange(t, e), Approve: true, By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 1 {
		t.Errorf("applied %d blocked changes, want 1", len(res.Applied))
	}
	e.sameRows("SELECT * FROM items ORDER BY id")
}

func TestMissingTargetColumnHoldsUntilReleased(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE p (id int PRIMARY KEY, a text)",
		specs:     []apply.TableSpec{{Source: table("public", "p")}},
		policy:    apply.Policy{OnMissingColumn: apply.MissingColumnHold},
	})
	e.exec(`INSERT INTO p VALUES (1, 'x')`)
	e.sync()
	e.exec(`ALTER TABLE p ADD COLUMN c text; UPDATE p SET c = 'new' WHERE id = 1; UPDATE p SET a = 'y' WHERE id = 1;
		INSERT INTO p (id, a) VALUES (2, 'no value for c')`)
	e.sync()
	e.wantRows("SELECT id, a FROM p ORDER BY id", "1 | x", "2 | no value for c")
	e.wantRows(`SELECT status, decision_reason LIKE '%"c" has no column in target table public.p%'
		FROM changesync.change_events WHERE table_name = 'public.p' AND row_key = '1' AND change_type = 'update'
		ORDER BY source_lsn, seq`, "held | t", "blocked | f")

	// Once the target has the column, a release with a fresh applier writes it.
	e.execOn(e.dst, `ALTER TABLE p ADD COLUMN c text`)
	fresh, err := apply.New(context.Background(), e.store.Pool,
		[]apply.TableSpec{{Source: table("public", "p"), Target: table("public", "p")}}, apply.Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.Release(context.Background(), e.store, fresh, "test",
		pipeline.ReleaseRequest{ChangeID: heldChange(t, e), Approve: true, By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	e.sameRows("SELECT * FROM p ORDER BY id")
}

func TestReleaseRefusesLaterHeldChangeOfRow(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE items (id int PRIMARY KEY, price int, note text)",
		specs:     []apply.TableSpec{{Source: table("public", "items")}},
		validator: holdChecks{},
	})
	e.exec(`INSERT INTO items VALUES (1, 10, 'a')`)
	e.sync()
	e.exec(`UPDATE items SET note = 'CHECK', price = 99 WHERE id = 1`)
	e.exec(`UPDATE items SET note = 'CHECK', price = 100 WHERE id = 1`)
	e.sync()
	ids := e.targetRows(`SELECT id FROM changesync.change_events WHERE status = 'held' ORDER BY source_lsn, seq`)
	if len(ids) != 2 {
		t.Fatalf("held changes %v, want 2", ids)
	}
	_, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: uuid.MustParse(ids[1]), Approve: true, By: "ops"})
	if !errors.Is(err, pipeline.ErrOutOfOrder) {
		t.Fatalf("release of the later change: %v, want ErrOutOfOrder", err)
	}
	for _, id := range ids {
		_, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
			pipeline.ReleaseRequest{ChangeID: uuid.MustParse(id), Approve: true, By: "ops"})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.sameRows("SELECT * FROM items ORDER BY id")
}

func TestReleaseWritesNotifications(t *testing.T) {
	e := startHoldSync(t)
	all := func(notify.EventType, string) bool { return true }
	_, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: heldChange(t, e), Approve: true, By: "alice"},
		pipeline.WithReleaseNotifications(all))
	if err != nil {
		t.Fatal(err)
	}
	e.wantRows(`SELECT event_type, payload->>'row_key', payload->'decision'->>'decided_by' FROM changesync.outbox
		ORDER BY payload->>'change_id'`, rowsOfReleaseEvents(t, e)...)
}

// rowsOfReleaseEvents lists the expected outbox rows: one sync event per change of row 1
// that the release applied.
func rowsOfReleaseEvents(t *testing.T, e *syncEnv) []string {
	t.Helper()
	return e.targetRows(`SELECT 'sync | 1 | ∅' FROM changesync.change_events
		WHERE table_name = 'public.items' AND row_key = '1' AND change_type = 'update'
		ORDER BY id::text`)
}

// largeHold contains digests for two changes of one row: a held change that writes a
// body longer than the audit's value limit, and a change blocked behind it. For each it
// has the digest that change_events stores of the body, and the md5 of that body.
type largeHold struct {
	heldDigest, heldMD5       string
	blockedDigest, blockedMD5 string
}

// auditLimit is the audit's value limit of the large-value hold tests, in bytes.
const auditLimit = 1024

func startLargeHoldSync(t *testing.T) (*syncEnv, largeHold) {
	e := startSync(t, syncSetup{
		sourceDDL:          "CREATE TABLE items (id int PRIMARY KEY, note text, body text)",
		specs:              []apply.TableSpec{{Source: table("public", "items")}},
		validator:          holdChecks{},
		auditMaxValueBytes: auditLimit,
	})
	bodyQuery := `SELECT ` + auditDigestSQL("body") + `, md5(body) FROM items WHERE id = 1`
	var h largeHold
	e.exec(`INSERT INTO items VALUES (1, 'a', 'short')`)
	e.sync()
	e.exec(`UPDATE items SET note = 'CHECK', body = ` + bigValue + ` WHERE id = 1`) // held
	afterHeld := strings.Split(rows(t, e.src, bodyQuery)[0], " | ")
	h.heldDigest, h.heldMD5 = afterHeld[0], afterHeld[1]
	e.exec(`UPDATE items SET note = 'a2', body = body || 'y' WHERE id = 1`) // blocked
	afterBlocked := strings.Split(rows(t, e.src, bodyQuery)[0], " | ")
	h.blockedDigest, h.blockedMD5 = afterBlocked[0], afterBlocked[1]
	e.exec(`INSERT INTO items VALUES (2, 'b', ` + bigValue + `)`) // another row: applied at once
	e.sync()

	e.wantRows("SELECT id, note, length(body) FROM items ORDER BY id", "1 | a | 5", "2 | b | 38400")
	// The held and the blocked change keep the long value whole for the release.
	e.wantRows(`SELECT status, jsonb_typeof(new_data->'body'), md5(new_data->>'body')
		FROM changesync.change_events WHERE table_name = 'public.items' AND row_key = '1'
		AND change_type = 'update' ORDER BY source_lsn, seq`,
		"held | string | "+h.heldMD5, "blocked | string | "+h.blockedMD5)
	// The applied change of row 2 stores its digest. Values are clipped to keep failures short.
	row2 := rows(t, e.src, `SELECT `+auditDigestSQL("body")+` FROM items WHERE id = 2`)[0]
	e.wantRows(`SELECT status, left((new_data->'body')::text, 200) FROM changesync.change_events
		WHERE table_name = 'public.items' AND row_key = '2'`, "synced | "+row2)
	return e, h
}

func TestReleaseHeldLargeValue(t *testing.T) {
	e, h := startLargeHoldSync(t)
	res, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: heldChange(t, e), Approve: true, By: "ops"},
		pipeline.WithReleaseMaxValueBytes(auditLimit))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Released) != 1 || len(res.Applied) != 1 || len(res.Failed) != 0 {
		t.Errorf("result = %+v, want 1 released, 1 applied, 0 failed", res)
	}
	e.sameRows("SELECT id, note, md5(body), length(body) FROM items ORDER BY id")

	// Once decided, the changes store digests like changes that were never held.
	e.wantRows(`SELECT status, left((new_data->'body')::text, 200), new_data->>'note' FROM changesync.change_events
		WHERE table_name = 'public.items' AND row_key = '1' AND change_type = 'update'
		ORDER BY source_lsn, seq`, "synced | "+h.heldDigest+" | CHECK", "synced | "+h.blockedDigest+" | a2")
	// sync_log keeps the whole values.
	e.wantRows(`SELECT md5(l.diff->'body'->>'old'), md5(l.diff->'body'->>'new')
		FROM changesync.sync_log l JOIN changesync.change_events c ON c.id = l.change_event_id
		WHERE c.table_name = 'public.items' AND c.row_key = '1' AND c.change_type = 'update'
		ORDER BY c.source_lsn, c.seq`, md5Text("short")+" | "+h.heldMD5, h.heldMD5+" | "+h.blockedMD5)

	// Undo restores the long value from sync_log, although change_events has its digest.
	spec := apply.TableSpec{Source: table("public", "items"), Target: table("public", "items")}
	u, err := undo.New(undo.Config{Store: e.store, Tables: []apply.TableSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	last := uuid.MustParse(e.targetRows(`SELECT id FROM changesync.change_events WHERE table_name = 'public.items'
		AND row_key = '1' ORDER BY source_lsn DESC, seq DESC LIMIT 1`)[0])
	if _, err := u.Execute(context.Background(), undo.Request{ChangeID: last, Reason: "test", Requestor: "t"}); err != nil {
		t.Fatalf("undo %s: %v", last, err)
	}
	e.wantRows("SELECT note, md5(body) FROM items WHERE id = 1", "CHECK | "+h.heldMD5)
}

func TestReleaseRejectsDigestedValue(t *testing.T) {
	e, _ := startLargeHoldSync(t)
	id := heldChange(t, e)
	// A held change whose row was edited to store a digest, which changesync never does.
	e.execOn(e.dst, `UPDATE changesync.change_events SET new_data = jsonb_set(new_data, '{body}',
		'{"sha256": "00", "bytes": 38400}') WHERE id = '`+id.String()+`'`)

	_, err := pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: id, Approve: true, By: "ops"},
		pipeline.WithReleaseMaxValueBytes(auditLimit))
	if !errors.Is(err, pipeline.ErrValueDigested) {
		t.Fatalf("release of a digested value: %v, want ErrValueDigested", err)
	}
	if want := "stores new_data columns body only as digests"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
	e.wantRows("SELECT id, note, length(body) FROM items WHERE id = 1", "1 | a | 5")
	e.wantRows(`SELECT status FROM changesync.change_events WHERE id = '`+id.String()+`'`, "held")

	// Rejecting the held change applies the blocked change, which has its value whole.
	_, err = pipeline.Release(context.Background(), e.store, e.applier, "test",
		pipeline.ReleaseRequest{ChangeID: id, Approve: false, By: "ops"},
		pipeline.WithReleaseMaxValueBytes(auditLimit))
	if err != nil {
		t.Fatal(err)
	}
	e.sameRows("SELECT id, note, md5(body) FROM items ORDER BY id")
}

func md5Text(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
