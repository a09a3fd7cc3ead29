package capture

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
)

const twoTables = `CREATE TABLE public.a (id int PRIMARY KEY, v text);
	CREATE TABLE public.b (id int PRIMARY KEY, v text);`

// publishedTables lists the tables of the fixture's publication as schema.name.
func (f *fixture) publishedTables() []string {
	f.t.Helper()
	rows, err := f.conn.Query(f.ctx(), `SELECT schemaname || '.' || tablename
		FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, f.cfg.Publication)
	if err != nil {
		f.t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return names
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.conn.QueryRow(f.ctx(), sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func (f *fixture) publicationCount() int {
	return f.count(`SELECT count(*) FROM pg_publication WHERE pubname = $1`, f.cfg.Publication)
}

func (f *fixture) slotCount() int {
	return f.count(`SELECT count(*) FROM pg_replication_slots
		WHERE slot_name = $1 AND plugin = 'pgoutput' AND NOT temporary`, f.cfg.Slot)
}

func TestSetupCreatesPublicationAndSlot(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	r := f.reader()

	created, err := r.Setup(f.ctx())
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if !created {
		t.Error("first Setup reported created = false, want true")
	}
	if got := f.slotCount(); got != 1 {
		t.Errorf("permanent pgoutput slots named %s = %d, want 1", f.cfg.Slot, got)
	}
	if got := f.publishedTables(); !slices.Equal(got, []string{"public.a"}) {
		t.Errorf("published tables = %v, want [public.a]", got)
	}
	if f.logs.count("replication slot created") != 1 || f.logs.count("publication created") != 1 {
		t.Errorf("logs = %v, want one slot created and one publication created", f.logs.records)
	}
}

func TestSetupTwiceIsNoop(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	r := f.setup()
	before := f.slotConfirmed()

	created, err := r.Setup(f.ctx())
	if err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if created {
		t.Error("second Setup reported created = true, want false")
	}
	if got := f.slotConfirmed(); got != before {
		t.Errorf("slot confirmed_flush_lsn = %s after second Setup, want unchanged %s", got, before)
	}
	if f.logs.count("publication altered") != 0 {
		t.Error("second Setup altered the publication")
	}
}

func TestSetupAddsLaterConfiguredTable(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	f.setup()

	f.cfg.Tables = append(f.cfg.Tables, change.TableName{Schema: "public", Name: "b"})
	created, err := f.reader().Setup(f.ctx())
	if err != nil {
		t.Fatalf("Setup with a new table: %v", err)
	}
	if created {
		t.Error("Setup created the slot again")
	}
	if got := f.publishedTables(); !slices.Equal(got, []string{"public.a", "public.b"}) {
		t.Errorf("published tables = %v, want [public.a public.b]", got)
	}
}

func TestSetupNeverDropsPublishedTable(t *testing.T) {
	f := newFixture(t, twoTables, "public.a", "public.b")
	f.setup()

	f.cfg.Tables = f.cfg.Tables[:1]
	if _, err := f.reader().Setup(f.ctx()); err != nil {
		t.Fatalf("Setup with fewer tables: %v", err)
	}
	if got := f.publishedTables(); !slices.Equal(got, []string{"public.a", "public.b"}) {
		t.Errorf("published tables = %v, want both kept", got)
	}
}

func TestSetupQuotesNames(t *testing.T) {
	f := newFixture(t, `CREATE SCHEMA "Odd Schema";
		CREATE TABLE "Odd Schema"."Mixed ""Case""" (id int PRIMARY KEY);`, `Odd Schema.Mixed "Case"`)
	f.cfg.Publication = `pub "with" 'quotes'`
	r := f.setup()

	if got := f.publishedTables(); !slices.Equal(got, []string{`Odd Schema.Mixed "Case"`}) {
		t.Errorf("published tables = %v", got)
	}
	s := startStream(t, r, 0, 4)
	f.exec(`INSERT INTO "Odd Schema"."Mixed ""Case""" VALUES (1)`)
	if tx := s.next(); tx.Events[0].Relation.Table.Name != `Mixed "Case"` {
		t.Errorf("event table = %q", tx.Events[0].Relation.Table)
	}
}

func TestSetupSlotOfAnotherPlugin(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	f.exec(`SELECT pg_create_logical_replication_slot('cs_slot', 'test_decoding')`)

	_, err := f.reader().Setup(f.ctx())
	if !isPermanent(err, ErrSlotMismatch) {
		t.Fatalf("Setup = %v, want ErrSlotMismatch", err)
	}
	if !strings.Contains(err.Error(), "test_decoding") {
		t.Errorf("error %q does not name the slot's plugin", err)
	}
}

func TestSetupTimesOutOnOpenTransaction(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	f.cfg.SlotTimeout = 500 * time.Millisecond

	open := connect(t, f.url)
	if _, err := open.Exec(f.ctx(), "BEGIN; INSERT INTO public.b VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	_, err := f.reader().Setup(f.ctx())
	if err == nil {
		t.Fatal("Setup succeeded with an open transaction, want a timeout")
	}
	if !strings.Contains(err.Error(), "open transactions") {
		t.Errorf("error %q does not mention open transactions", err)
	}
	if elapsed := time.Since(started); elapsed > 10*time.Second {
		t.Errorf("Setup took %s, want about the 500ms slot timeout", elapsed)
	}
	waitFor(t, "the half-made slot to be dropped", func() bool { return f.slotCount() == 0 })

	if _, err := open.Exec(f.ctx(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if created, err := f.reader().Setup(f.ctx()); err != nil || !created {
		t.Errorf("Setup after the commit = %v, %v; want created", created, err)
	}
}

func TestTeardownDropsSlotAndPublication(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	r := f.setup()

	if err := r.Teardown(f.ctx()); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if got := f.slotCount(); got != 0 {
		t.Errorf("slots after Teardown = %d, want 0", got)
	}
	if got := f.publicationCount(); got != 0 {
		t.Errorf("publications after Teardown = %d, want 0", got)
	}
	if err := r.Teardown(f.ctx()); err != nil {
		t.Errorf("second Teardown: %v, want nil", err)
	}
}

func TestTeardownRefusesActiveSlot(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	r := f.setup()
	s := startStream(t, r, 0, 4)
	f.exec(`INSERT INTO public.a VALUES (1, 'x')`)
	s.next()

	err := r.Teardown(f.ctx())
	if err == nil || !strings.Contains(err.Error(), "streaming from it") {
		t.Errorf("Teardown of an active slot = %v, want an error naming the streaming process", err)
	}
	if got := f.slotCount(); got != 1 {
		t.Errorf("slots = %d, want the active slot kept", got)
	}
}

func TestTeardownPublicationOfAnotherOwner(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	f.setup() // as the superuser, which then owns the publication
	role := pgtest.DatabaseName("teardown_role")
	f.exec(`CREATE ROLE ` + role + ` LOGIN REPLICATION`)
	t.Cleanup(func() { f.exec("DROP ROLE IF EXISTS " + role) })
	u, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	f.cfg.URL = u.String()

	err = f.reader().Teardown(f.ctx())
	if !isPermanent(err, ErrPermission) {
		t.Fatalf("Teardown = %v, want ErrPermission", err)
	}
	for _, want := range []string{
		"replication slot cs_slot is dropped",
		"dropping a publication needs ownership of it",
		`ALTER PUBLICATION "cs_pub" OWNER TO "` + role + `"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "REPLICATION attribute") {
		t.Errorf("error %q blames the REPLICATION attribute, which the role has", err)
	}
	if got := f.slotCount(); got != 0 {
		t.Errorf("slots = %d, want the slot dropped", got)
	}
	if got := f.publicationCount(); got != 1 {
		t.Errorf("publications = %d, want the publication kept", got)
	}
}

func TestSetupWithSnapshot(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	f.exec(`INSERT INTO public.a SELECT g, 'before' FROM generate_series(1, 5) g`)
	r := f.reader()

	var snapshotIDs []int
	var consistent change.LSN
	copyTables := func(ctx context.Context, snapshot string, at change.LSN) error {
		consistent = at
		// Rows committed now are after the consistent point: the stream must bring them.
		f.exec(`INSERT INTO public.a VALUES (6, 'after'), (7, 'after')`)
		ids, err := readInSnapshot(ctx, f.url, snapshot)
		snapshotIDs = ids
		return err
	}
	created, err := r.SetupWithSnapshot(f.ctx(), copyTables)
	if err != nil {
		t.Fatalf("SetupWithSnapshot: %v", err)
	}
	if !created {
		t.Error("created = false, want true")
	}
	if !slices.Equal(snapshotIDs, []int{1, 2, 3, 4, 5}) {
		t.Errorf("ids in the snapshot = %v, want 1..5", snapshotIDs)
	}

	s := startStream(t, r, consistent, 16)
	f.exec(`INSERT INTO public.a VALUES (8, 'later')`)
	var streamed []string
	for len(streamed) < 3 {
		for _, ev := range s.next().Events {
			streamed = append(streamed, ev.New[0].Text)
		}
	}
	if !slices.Equal(streamed, []string{"6", "7", "8"}) {
		t.Errorf("streamed ids = %v, want [6 7 8]", streamed)
	}
	s.expectNone(300 * time.Millisecond)
}

func TestSetupWithSnapshotExistingSlot(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	r := f.setup()

	called := false
	created, err := r.SetupWithSnapshot(f.ctx(), func(context.Context, string, change.LSN) error {
		called = true
		return nil
	})
	if err != nil || created {
		t.Errorf("SetupWithSnapshot = %v, %v; want false, nil", created, err)
	}
	if called {
		t.Error("copy was called for an existing slot")
	}
}

func TestSetupWithSnapshotCopyError(t *testing.T) {
	f := newFixture(t, twoTables, "public.a")
	copyErr := errors.New("target unreachable")

	failing := func(context.Context, string, change.LSN) error { return copyErr }
	created, err := f.reader().SetupWithSnapshot(f.ctx(), failing)
	if !errors.Is(err, copyErr) {
		t.Errorf("error = %v, want it to wrap the copy error", err)
	}
	if !created {
		t.Error("created = false, want true: the slot stays")
	}
}

// readInSnapshot imports an exported snapshot on a new connection and returns the ids
// of public.a in that snapshot.
func readInSnapshot(ctx context.Context, url, snapshot string) ([]int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())

	sql := "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT " + quoteLiteral(snapshot)
	_, err = conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT id FROM public.a ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}
