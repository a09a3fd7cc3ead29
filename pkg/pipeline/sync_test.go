package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/capture"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/metrics"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/store"
)

// markerDDL creates the table that syncEnv.sync updates on the source to learn when the
// target has caught up with everything committed before it.
const markerDDL = `CREATE TABLE public.cs_marker (id int PRIMARY KEY, v bigint NOT NULL);
INSERT INTO public.cs_marker VALUES (1, 0);`

// syncEnv is a source and a target database with the real capture, pipeline and applier
// running between them in the test process.
type syncEnv struct {
	t              *testing.T
	srcURL, dstURL string
	src, dst       *pgx.Conn // checking sessions with pinned text settings
	marker         int64
	store          *store.Store
	applier        *apply.Applier
	reader         *capture.Reader
	stop           context.CancelFunc
	done           chan error
	stopped        atomic.Bool
}

// syncSetup describes the databases and the mapping of one test.
type syncSetup struct {
	sourceDDL string
	targetDDL string // empty means the same as sourceDDL
	specs     []apply.TableSpec
	policy    apply.Policy
	snapshot  bool
	log       *slog.Logger
	// partEvents is the capture's part size; 0 keeps its default.
	partEvents int
	validator  pipeline.Validator
	metrics    *metrics.Pipeline
	// auditMaxValueBytes is the pipeline's AuditMaxValueBytes; 0 stores every value whole.
	auditMaxValueBytes int
}

// startSync creates both databases, runs the DDL and starts streaming.
func startSync(t *testing.T, setup syncSetup) *syncEnv {
	t.Helper()
	if setup.targetDDL == "" {
		setup.targetDDL = setup.sourceDDL
	}
	e := &syncEnv{t: t, srcURL: pgtest.NewDB(t), dstURL: pgtest.NewDB(t)}
	e.src, e.dst = checkingConn(t, e.srcURL), checkingConn(t, e.dstURL)
	e.execOn(e.src, setup.sourceDDL+";"+markerDDL)
	e.execOn(e.dst, setup.targetDDL+";"+markerDDL)
	e.startPipeline(setup)
	return e
}

func (e *syncEnv) startPipeline(setup syncSetup) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	specs := append(slices.Clone(setup.specs), apply.TableSpec{Source: change.TableName{Schema: "public", Name: "cs_marker"}})
	tables := make([]change.TableName, len(specs))
	for i, s := range specs {
		tables[i] = s.Source
		if s.Target == (change.TableName{}) {
			specs[i].Target = s.Source
		}
	}
	if err := store.Migrate(ctx, e.dstURL, "changesync"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, e.dstURL, "changesync")
	if err != nil {
		t.Fatal(err)
	}
	applier, err := apply.New(ctx, st.Pool, specs, setup.policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := capture.New(capture.Config{
		URL: e.srcURL, Publication: "cs_pub", Slot: e.slot(), Tables: tables,
		StatusInterval: time.Second, Heartbeat: time.Second, PartEvents: setup.partEvents,
	})
	if err != nil {
		t.Fatal(err)
	}
	var opts []pipeline.Option
	if setup.log != nil {
		opts = append(opts, pipeline.WithLogger(setup.log))
	}
	if setup.validator != nil {
		opts = append(opts, pipeline.WithValidator(setup.validator))
	}
	if setup.metrics != nil {
		opts = append(opts, pipeline.WithMetrics(setup.metrics))
	}
	e.store, e.applier, e.reader = st, applier, reader
	cfg := pipeline.Config{Name: "test", Slot: e.slot(), AuditMaxValueBytes: setup.auditMaxValueBytes}
	p := pipeline.New(cfg, reader, applier, st, opts...)
	err = p.Prepare(ctx, reader, pipeline.PrepareConfig{SourceURL: e.srcURL, Snapshot: setup.snapshot, Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	e.stop, e.done = cancel, make(chan error, 1)
	e.stopped.Store(false)
	go func() {
		e.done <- p.Run(ctx)
		st.Close()
	}()
	t.Cleanup(func() { _ = e.stopPipeline() })
}

// slot returns the test's slot name: the source database's name, because slots are
// shared by all databases of a server, which other test packages may use at once.
func (e *syncEnv) slot() string {
	return rows(e.t, e.src, "SELECT current_database()")[0]
}

// stopPipeline stops the pipeline and returns the error it ended with.
func (e *syncEnv) stopPipeline() error {
	if e.stopped.Swap(true) {
		return nil
	}
	e.stop()
	return <-e.done
}

// checkingConn connects with the settings that fix the text form of dates, times,
// floats and bytea, so that rows compare as text across databases.
func checkingConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pipeline.PinSessionSettings(cfg)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (e *syncEnv) execOn(conn *pgx.Conn, sql string) {
	e.t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		e.t.Fatalf("%v\nin:\n%s", err, sql)
	}
}

// exec runs statements on the source.
func (e *syncEnv) exec(sql string) { e.t.Helper(); e.execOn(e.src, sql) }

// sync waits until the target has applied everything the source committed so far.
func (e *syncEnv) sync() {
	e.t.Helper()
	e.syncWithin(60 * time.Second)
}

// syncWithin is sync with a timeout of its own, for workloads that take long.
func (e *syncEnv) syncWithin(timeout time.Duration) {
	e.t.Helper()
	e.marker++
	e.exec(fmt.Sprintf("UPDATE public.cs_marker SET v = %d", e.marker))
	deadline := time.Now().Add(timeout)
	for {
		var v int64
		err := e.dst.QueryRow(context.Background(), "SELECT v FROM public.cs_marker").Scan(&v)
		if err == nil && v >= e.marker {
			return
		}
		select {
		case err := <-e.done:
			e.stopped.Store(true)
			e.t.Fatalf("the pipeline stopped before catching up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the target did not catch up within %s (marker %d, want %d)", timeout, v, e.marker)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rows returns the result of query as text, one string per row with columns separated
// by " | " and NULL written as "∅".
func rows(t *testing.T, conn *pgx.Conn, query string) []string {
	t.Helper()
	rs, err := conn.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%v\nin: %s", err, query)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var cols []string
		for _, raw := range rs.RawValues() {
			if raw == nil {
				cols = append(cols, "∅")
			} else {
				cols = append(cols, string(raw))
			}
		}
		out = append(out, strings.Join(cols, " | "))
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%v\nin: %s", err, query)
	}
	return out
}

// sameRows checks that query returns the same rows on the source and the target.
func (e *syncEnv) sameRows(query string) {
	e.t.Helper()
	want, got := rows(e.t, e.src, query), rows(e.t, e.dst, query)
	if slices.Equal(want, got) {
		return
	}
	e.t.Errorf("target differs from source for %s", query)
	for i := range max(len(want), len(got)) {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			e.t.Errorf("row %d:\n  source: %s\n  target: %s", i, clip(w), clip(g))
		}
	}
}

// targetRows returns query's rows on the target.
func (e *syncEnv) targetRows(query string) []string {
	e.t.Helper()
	return rows(e.t, e.dst, query)
}

// wantRows checks query's rows on the target.
func (e *syncEnv) wantRows(query string, want ...string) {
	e.t.Helper()
	got := e.targetRows(query)
	if !slices.Equal(got, want) {
		e.t.Errorf("%s:\n got: %q\nwant: %q", query, got, want)
	}
}

func TestPrepareKeepsSharedPublication(t *testing.T) {
	ddl := `CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE other (id int PRIMARY KEY);
		INSERT INTO items VALUES (1, 'before the slot')`
	e := &syncEnv{t: t, srcURL: pgtest.NewDB(t), dstURL: pgtest.NewDB(t)}
	e.src, e.dst = checkingConn(t, e.srcURL), checkingConn(t, e.dstURL)
	e.execOn(e.src, ddl+";"+markerDDL+"; CREATE PUBLICATION cs_pub FOR TABLE other")
	e.execOn(e.dst, ddl+";"+markerDDL+"; DELETE FROM items")
	e.startPipeline(syncSetup{specs: []apply.TableSpec{{Source: table("public", "items")}}, snapshot: true})

	e.exec(`INSERT INTO items VALUES (2, 'after')`)
	e.sync()
	e.sameRows("SELECT * FROM items ORDER BY id")
	got := rows(t, e.src, "SELECT tablename FROM pg_publication_tables WHERE pubname = 'cs_pub' ORDER BY 1")
	if want := []string{"cs_marker", "items", "other"}; !slices.Equal(got, want) {
		t.Errorf("publication cs_pub has tables %q, want %q", got, want)
	}
}

// clip shortens a row for a failure message.
func clip(row string) string {
	if len(row) <= 300 {
		return row
	}
	return row[:300] + fmt.Sprintf("… (%d bytes)", len(row))
}
