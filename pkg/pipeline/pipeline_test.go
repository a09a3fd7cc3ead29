package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/store"
)

// scriptedSource replays a fixed list of transactions, as a slot does after a restart
// when the last confirmation did not reach it, and records what the pipeline confirms.
type scriptedSource struct {
	txs []*change.Tx

	mu        sync.Mutex
	confirmed change.LSN
}

func (s *scriptedSource) Stream(ctx context.Context, _ change.LSN, out chan<- *change.Tx) error {
	for _, tx := range s.txs {
		select {
		case out <- tx:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func (s *scriptedSource) Confirm(lsn change.LSN) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirmed = lsn
}

func (s *scriptedSource) lastConfirmed() change.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed
}

var itemsRel = &change.Relation{
	OID: 1, Table: change.TableName{Schema: "public", Name: "items"}, ReplicaIdentity: 'd',
	Columns: []change.Column{{Name: "id", Key: true}, {Name: "qty"}},
}

func itemTx(commit change.LSN, events ...change.Event) *change.Tx {
	tx := &change.Tx{
		Xid: uint32(commit), CommitLSN: commit, EndLSN: commit + 8,
		CommitTime: time.Unix(1700000000, 0).UTC(), Events: events,
	}
	tx.Stamp("test")
	return tx
}

func upsertItem(op change.Op, id, qty string) change.Event {
	return change.Event{Op: op, Relation: itemsRel, New: change.Tuple{change.TextValue(id), change.TextValue(qty)}}
}

// newTestPipeline migrates a fresh target with public.items and returns a pipeline on it.
func newTestPipeline(t *testing.T, src Source, opts ...Option) (*Pipeline, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, qty int)"); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, url, "changesync"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, "changesync")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	a, err := apply.New(ctx, st.Pool, []apply.TableSpec{{Source: itemsRel.Table, Target: itemsRel.Table}}, apply.Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Name: "test", Slot: "test"}, src, a, st, opts...), conn
}

// runUntil runs the pipeline until cond holds, then stops it and checks it returned nil.
func runUntil(t *testing.T, p *Pipeline, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("condition not reached within 20s (run returned %v)", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after shutdown, want nil", err)
	}
}

func count(t *testing.T, conn *pgx.Conn, query string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPipelineAppliesAndAudits(t *testing.T) {
	txs := []*change.Tx{
		itemTx(100, upsertItem(change.OpInsert, "1", "5"), upsertItem(change.OpInsert, "2", "7")),
		itemTx(200, upsertItem(change.OpUpdate, "1", "6")),
		itemTx(300), // a transaction without row events still moves the checkpoint
	}
	src := &scriptedSource{txs: txs}
	p, conn := newTestPipeline(t, src)
	runUntil(t, p, func() bool { return src.lastConfirmed() == 308 })

	if got := count(t, conn, "SELECT qty FROM items WHERE id = 1"); got != 6 {
		t.Errorf("items.qty of 1 = %d, want 6", got)
	}
	if got := count(t, conn, "SELECT count(*) FROM changesync.change_events WHERE status = 'synced'"); got != 3 {
		t.Errorf("synced change_events = %d, want 3", got)
	}
	if got := count(t, conn, "SELECT count(*) FROM changesync.sync_log"); got != 3 {
		t.Errorf("sync_log rows = %d, want 3", got)
	}
	var diff string
	err := conn.QueryRow(context.Background(), `SELECT l.diff::text FROM changesync.sync_log l
		JOIN changesync.change_events e ON e.id = l.change_event_id WHERE e.source_lsn = 200`).Scan(&diff)
	if err != nil {
		t.Fatal(err)
	}
	if diff != `{"qty": {"new": "6", "old": "5"}}` {
		t.Errorf("diff of the update = %s", diff)
	}
	var commitLSN, endLSN int64
	err = conn.QueryRow(context.Background(),
		"SELECT commit_lsn, end_lsn FROM changesync.checkpoints WHERE pipeline = 'test'").Scan(&commitLSN, &endLSN)
	if err != nil {
		t.Fatal(err)
	}
	if commitLSN != 300 || endLSN != 308 {
		t.Errorf("checkpoint = (%d, %d), want (300, 308)", commitLSN, endLSN)
	}
}

func TestPipelineReplaySkipsCheckpointed(t *testing.T) {
	first := []*change.Tx{itemTx(100, upsertItem(change.OpInsert, "1", "5"))}
	src := &scriptedSource{txs: first}
	p, conn := newTestPipeline(t, src)
	runUntil(t, p, func() bool { return src.lastConfirmed() == 108 })

	// The slot resends the first transaction, as after a crash before the confirmation
	// reached it, followed by a new one.
	src.txs = []*change.Tx{first[0], itemTx(200, upsertItem(change.OpUpdate, "1", "9"))}
	runUntil(t, p, func() bool { return src.lastConfirmed() == 208 })

	if got := count(t, conn, "SELECT count(*) FROM changesync.change_events"); got != 2 {
		t.Errorf("change_events = %d, want 2: the replayed transaction was recorded again", got)
	}
	if got := count(t, conn, "SELECT qty FROM items WHERE id = 1"); got != 9 {
		t.Errorf("items.qty = %d, want 9", got)
	}
}

// verdictByQty skips rows whose qty is 0 and rejects negative ones.
type verdictByQty struct{}

func (verdictByQty) Validate(_ context.Context, _ *change.Tx, ev *change.Event) change.Decision {
	switch ev.New[1].Text {
	case "0":
		return change.Decision{Verdict: change.Skip, Reason: "qty is zero", DecidedBy: "rule:zero"}
	case "-1":
		return change.Decision{Verdict: change.Reject, Reason: "qty is negative", DecidedBy: "rule:negative"}
	}
	return ApproveAll{}.Validate(context.Background(), nil, ev)
}

func TestPipelineRecordsDecisions(t *testing.T) {
	src := &scriptedSource{txs: []*change.Tx{itemTx(100,
		upsertItem(change.OpInsert, "1", "0"),
		upsertItem(change.OpInsert, "2", "-1"),
		upsertItem(change.OpInsert, "3", "4"))}}
	p, conn := newTestPipeline(t, src, WithValidator(verdictByQty{}))
	runUntil(t, p, func() bool { return src.lastConfirmed() == 108 })

	if got := count(t, conn, "SELECT count(*) FROM items"); got != 1 {
		t.Errorf("items rows = %d, want only the approved one", got)
	}
	rows, err := conn.Query(context.Background(),
		"SELECT row_key, status::text, decided_by, validated, synced FROM changesync.change_events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		key, status, by   string
		validated, synced bool
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
		var x rec
		err := r.Scan(&x.key, &x.status, &x.by, &x.validated, &x.synced)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{
		{"1", "skipped", "rule:zero", true, false},
		{"2", "rejected", "rule:negative", true, false},
		{"3", "synced", "changesync:default", true, true},
	}
	if len(got) != len(want) {
		t.Fatalf("change_events = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPipelineIgnoresUnconfiguredTables(t *testing.T) {
	other := &change.Relation{
		Table: change.TableName{Schema: "public", Name: "other"}, ReplicaIdentity: 'd',
		Columns: []change.Column{{Name: "id", Key: true}},
	}
	src := &scriptedSource{txs: []*change.Tx{itemTx(100,
		change.Event{Op: change.OpInsert, Relation: other, New: change.Tuple{change.TextValue("1")}},
		upsertItem(change.OpInsert, "1", "1"))}}
	p, conn := newTestPipeline(t, src)
	runUntil(t, p, func() bool { return src.lastConfirmed() == 108 })
	if got := count(t, conn, "SELECT count(*) FROM changesync.change_events"); got != 1 {
		t.Errorf("change_events = %d, want 1 (the unconfigured table's change is ignored)", got)
	}
}
