package undo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/capture"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/undo"
)

// markerDDL creates the table that env.sync updates on the source to learn when the
// target has caught up.
const markerDDL = `CREATE TABLE public.cs_marker (id int PRIMARY KEY, v bigint NOT NULL);
INSERT INTO public.cs_marker VALUES (1, 0);`

// env is a source and a target database with the real capture, pipeline and applier
// running between them, and an undo executor on the target.
type env struct {
	t        testing.TB
	src, dst *pgx.Conn
	dstURL   string
	st       *store.Store
	ex       *undo.Executor
	marker   int64
}

// rejectValidator rejects the changes whose new tuple has a column holding "reject" and
// approves the rest.
type rejectValidator struct{}

func (rejectValidator) Validate(_ context.Context, _ *change.Tx, ev *change.Event) change.Decision {
	for _, v := range ev.New {
		if v.Kind == change.Text && v.Text == "reject" {
			return change.Decision{Verdict: change.Reject, Reason: "value is reject", DecidedBy: "test-rule"}
		}
	}
	return change.Decision{Verdict: change.Approve, Reason: "test", DecidedBy: "test"}
}

// newEnv creates both databases with ddl (and targetDDL on the target when it is not
// empty), syncs the tables of specs and returns once streaming runs.
func newEnv(t testing.TB, ddl, targetDDL string, specs ...apply.TableSpec) *env {
	t.Helper()
	if targetDDL == "" {
		targetDDL = ddl
	}
	srcURL, dstURL := pgtest.NewDB(t), pgtest.NewDB(t)
	e := &env{t: t, src: checkingConn(t, srcURL), dst: checkingConn(t, dstURL), dstURL: dstURL}
	e.execOn(e.src, ddl+";"+markerDDL)
	e.execOn(e.dst, targetDDL+";"+markerDDL)

	ctx, cancel := context.WithCancel(context.Background())
	specs = append(slices.Clone(specs), apply.TableSpec{Source: change.TableName{Schema: "public", Name: "cs_marker"}})
	tables := make([]change.TableName, len(specs))
	for i, s := range specs {
		tables[i] = s.Source
		if s.Target == (change.TableName{}) {
			specs[i].Target = s.Source
		}
	}
	if err := store.Migrate(ctx, dstURL, "changesync"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dstURL, "changesync")
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	applier, err := apply.New(ctx, st.Pool, specs, apply.Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slot := rows(t, e.src, "SELECT current_database()")[0]
	reader, err := capture.New(capture.Config{
		URL: srcURL, Publication: "cs_pub", Slot: slot, Tables: tables,
		StatusInterval: time.Second, Heartbeat: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.New(pipeline.Config{Name: "test", Slot: slot}, reader, applier, st,
		pipeline.WithValidator(rejectValidator{}))
	if err := p.Prepare(ctx, reader, pipeline.PrepareConfig{SourceURL: srcURL, Tables: tables}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline: %v", err)
		}
		st.Close()
	})

	if e.ex, err = undo.New(undo.Config{Store: st, Tables: specs}); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkingConn connects with the text formats the store pins, so values compare as text.
func checkingConn(t testing.TB, url string) *pgx.Conn {
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

func (e *env) execOn(conn *pgx.Conn, sql string) {
	e.t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		e.t.Fatalf("%v\nin:\n%s", err, sql)
	}
}

// exec runs statements on the source and waits until the target has applied them.
func (e *env) exec(sql string) {
	e.t.Helper()
	e.execOn(e.src, sql)
	e.sync()
}

// sync waits until the target has applied everything the source committed so far.
func (e *env) sync() {
	e.t.Helper()
	e.marker++
	e.execOn(e.src, fmt.Sprintf("UPDATE public.cs_marker SET v = %d", e.marker))
	deadline := time.Now().Add(60 * time.Second)
	for {
		var v int64
		err := e.dst.QueryRow(context.Background(), "SELECT v FROM public.cs_marker").Scan(&v)
		if err == nil && v >= e.marker {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the target did not catch up within 60s (marker %d, want %d)", v, e.marker)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rows returns the result of query as text, one string per row with columns separated
// by " | " and NULL written as "∅".
func rows(t testing.TB, conn *pgx.Conn, query string, args ...any) []string {
	t.Helper()
	rs, err := conn.Query(context.Background(), query, args...)
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

// wantRows checks query's rows on the target.
func (e *env) wantRows(query string, want ...string) {
	e.t.Helper()
	got := rows(e.t, e.dst, query)
	if !slices.Equal(got, want) {
		e.t.Errorf("%s:\n got: %q\nwant: %q", query, got, want)
	}
}

// one returns the single value query returns on the target.
func (e *env) one(query string, args ...any) string {
	e.t.Helper()
	got := rows(e.t, e.dst, query, args...)
	if len(got) != 1 {
		e.t.Fatalf("%s returned %d rows, want 1: %q", query, len(got), got)
	}
	return got[0]
}

// changeID returns the id of the change of a row with the given operation, the newest
// when there are several.
func (e *env) changeID(table, rowKey string, op change.Op) string {
	e.t.Helper()
	return e.one(`SELECT id FROM changesync.change_events
		WHERE table_name = $1 AND row_key = $2 AND change_type = $3
		ORDER BY source_lsn DESC, seq DESC LIMIT 1`, table, rowKey, string(op))
}
