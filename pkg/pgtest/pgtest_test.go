package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestNewDBHasLogicalWAL(t *testing.T) {
	url := NewDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Errorf("wal_level = %q, want logical", level)
	}
}

func TestDropDatabaseWithSlot(t *testing.T) {
	c := Server(t)
	ctx := context.Background()
	name := DatabaseName(t.Name())
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT pg_create_logical_replication_slot('pgtest_slot', 'pgoutput')")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := c.DropDatabase(ctx, name); err != nil {
		t.Fatalf("drop database with a slot: %v", err)
	}
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after DropDatabase", name)
	}
}

func TestDatabaseNameFitsLimit(t *testing.T) {
	long := "TestSomething/with a very long subtest name that goes on and on and on and on"
	got := DatabaseName(long)
	if len(got) > 63 {
		t.Errorf("DatabaseName(%q) has %d bytes, want <= 63", long, len(got))
	}
	if got == DatabaseName(long) {
		t.Error("DatabaseName returned the same name twice")
	}
}
