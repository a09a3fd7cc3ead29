package store

import (
	"context"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/migrations"
	"github.com/datasense/changesync/pkg/pgtest"
)

// metadataTables are the tables the migrations create, besides the migrations table.
var metadataTables = []string{
	"change_events", "sync_log", "undo_requests", "checkpoints", "snapshots", "outbox",
	"outbox_deliveries",
}

// latestVersion returns the number of the newest migration.
func latestVersion(t *testing.T) int64 {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("list migrations: %v", err)
	}
	slices.Sort(files)
	v, err := strconv.ParseInt(strings.SplitN(files[len(files)-1], "_", 2)[0], 10, 64)
	if err != nil {
		t.Fatalf("migration file name %s: %v", files[len(files)-1], err)
	}
	return v
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a plain connection, without the store's session settings.
func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tablesIn returns the names of the base tables of a schema.
func tablesIn(t *testing.T, ctx context.Context, conn *pgx.Conn, schema string) map[string]bool {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, schema)
	if err != nil {
		t.Fatalf("list tables of schema %q: %v", schema, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables of schema %q: %v", schema, err)
	}
	found := make(map[string]bool, len(names))
	for _, n := range names {
		found[n] = true
	}
	return found
}

// migrationVersion reads the version golang-migrate recorded in the schema.
func migrationVersion(
	t *testing.T, ctx context.Context, conn *pgx.Conn, schema string,
) (version int64, dirty bool) {
	t.Helper()
	err := conn.QueryRow(ctx, "SELECT version, dirty FROM "+
		pgx.Identifier{schema, MigrationsTable}.Sanitize()).Scan(&version, &dirty)
	if err != nil {
		t.Fatalf("read migration version of schema %q: %v", schema, err)
	}
	return version, dirty
}

func TestMigrateTwiceIsNoChange(t *testing.T) {
	ctx := testContext(t)
	url := pgtest.NewDB(t)

	if err := Migrate(ctx, url, DefaultSchema); err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if err := Migrate(ctx, url, DefaultSchema); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	conn := connect(t, ctx, url)
	version, dirty := migrationVersion(t, ctx, conn, DefaultSchema)
	if want := latestVersion(t); version != want {
		t.Errorf("migration version = %d, want %d", version, want)
	}
	if dirty {
		t.Error("migration version is marked dirty")
	}

	tables := tablesIn(t, ctx, conn, DefaultSchema)
	for _, name := range append(metadataTables, MigrationsTable) {
		if !tables[name] {
			t.Errorf("table %s is missing from schema %s", name, DefaultSchema)
		}
	}
	if public := tablesIn(t, ctx, conn, "public"); len(public) != 0 {
		t.Errorf("schema public has tables %v, want none", public)
	}
}

func TestMigrateQuotedSchemaName(t *testing.T) {
	ctx := testContext(t)
	url := pgtest.NewDB(t)
	const schema = "Change-Meta"

	if err := Migrate(ctx, url, schema); err != nil {
		t.Fatalf("Migrate into %q: %v", schema, err)
	}
	if err := Migrate(ctx, url, schema); err != nil {
		t.Fatalf("second Migrate into %q: %v", schema, err)
	}

	conn := connect(t, ctx, url)
	tables := tablesIn(t, ctx, conn, schema)
	for _, name := range append(metadataTables, MigrationsTable) {
		if !tables[name] {
			t.Errorf("table %s is missing from schema %s", name, schema)
		}
	}
	if folded := tablesIn(t, ctx, conn, strings.ToLower(schema)); len(folded) != 0 {
		t.Errorf("lower-case schema has tables %v, want the name kept as given", folded)
	}
	if public := tablesIn(t, ctx, conn, "public"); len(public) != 0 {
		t.Errorf("schema public has tables %v, want none", public)
	}

	s, err := Open(ctx, url, schema)
	if err != nil {
		t.Fatalf("Open schema %q: %v", schema, err)
	}
	defer s.Close()
	insertEvents(t, ctx, s.Pool, newEvent("1", "detected"))
}

func TestMigrateConcurrent(t *testing.T) {
	ctx := testContext(t)
	url := pgtest.NewDB(t)
	const callers = 8

	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { errs[i] = Migrate(ctx, url, DefaultSchema) })
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate call %d: %v", i, err)
		}
	}
	version, dirty := migrationVersion(t, ctx, connect(t, ctx, url), DefaultSchema)
	if want := latestVersion(t); version != want {
		t.Errorf("migration version = %d, want %d", version, want)
	}
	if dirty {
		t.Error("migration version is marked dirty")
	}
}

func TestMigrateRejectsSchemaName(t *testing.T) {
	tests := []struct {
		name   string
		schema string
	}{
		{"empty", ""},
		{"too long", strings.Repeat("s", 64)},
		{"nul byte", "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The name is checked before connecting, so no server is needed.
			err := Migrate(context.Background(), "postgres://127.0.0.1:1/none", tt.schema)
			if err == nil {
				t.Fatalf("Migrate(schema %q) succeeded, want an error", tt.schema)
			}
			if !strings.Contains(err.Error(), "metadata schema name") {
				t.Errorf("error %q does not name the schema setting", err)
			}
		})
	}
}

func TestMigrateCanceledContext(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if err := Migrate(ctx, url, DefaultSchema); err == nil {
		t.Fatal("Migrate with a canceled context succeeded, want an error")
	}
}

func TestMigrateCommentsColumns(t *testing.T) {
	ctx := testContext(t)
	url := pgtest.NewDB(t)
	if err := Migrate(ctx, url, DefaultSchema); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	conn := connect(t, ctx, url)

	// Columns whose unit or format a reader cannot guess from the name and type.
	columns := []struct{ table, column string }{
		{"change_events", "row_key"},
		{"change_events", "source_lsn"},
		{"checkpoints", "commit_lsn"},
		{"checkpoints", "end_lsn"},
		{"snapshots", "consistent_lsn"},
		{"sync_log", "diff"},
	}
	for _, c := range columns {
		var comment *string
		err := conn.QueryRow(ctx, `SELECT col_description(a.attrelid, a.attnum)
			FROM pg_attribute a
			WHERE a.attrelid = $1::regclass AND a.attname = $2`,
			pgx.Identifier{DefaultSchema, c.table}.Sanitize(), c.column).Scan(&comment)
		if err != nil {
			t.Fatalf("read comment of %s.%s: %v", c.table, c.column, err)
		}
		if comment == nil || *comment == "" {
			t.Errorf("column %s.%s has no comment", c.table, c.column)
		}
	}
}

func TestDownMigrationDropsTables(t *testing.T) {
	ctx := testContext(t)
	url := pgtest.NewDB(t)
	if err := Migrate(ctx, url, DefaultSchema); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	downs, err := fs.Glob(migrations.FS, "*.down.sql")
	if err != nil {
		t.Fatalf("list down migrations: %v", err)
	}
	slices.Sort(downs)
	slices.Reverse(downs)

	conn := connect(t, ctx, url)
	_, err = conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{DefaultSchema}.Sanitize())
	if err != nil {
		t.Fatalf("set search_path: %v", err)
	}
	for _, name := range downs {
		down, err := migrations.FS.ReadFile(name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if _, err := conn.Exec(ctx, string(down)); err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
	}

	tables := tablesIn(t, ctx, conn, DefaultSchema)
	for _, name := range metadataTables {
		if tables[name] {
			t.Errorf("table %s still exists after the down migration", name)
		}
	}
	var types int
	err = conn.QueryRow(ctx, `SELECT count(*)
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = $1 AND t.typtype = 'e'`, DefaultSchema).Scan(&types)
	if err != nil {
		t.Fatalf("count enum types: %v", err)
	}
	if types != 0 {
		t.Errorf("%d enum types remain after the down migration, want 0", types)
	}
}
