package pgtest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CreateDatabase creates an empty database.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops a database after dropping its replication slots, which would
// otherwise keep it from being dropped.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)

	if err := dropSlots(ctx, conn, name); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// dropSlots ends the walsenders of a database's slots and drops the slots. A slot stays
// active for a moment after its walsender is told to end, so it retries for a while.
func dropSlots(ctx context.Context, conn *pgx.Conn, database string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid)
			FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, database)
		if err != nil {
			return fmt.Errorf("end walsenders of database %s: %w", database, err)
		}
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name)
			FROM pg_replication_slots WHERE database = $1 AND NOT active`, database)
		if err != nil && time.Now().After(deadline) {
			return fmt.Errorf("drop replication slots of database %s: %w", database, err)
		}
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots
			WHERE database = $1`, database).Scan(&left); err != nil {
			return fmt.Errorf("count replication slots of database %s: %w", database, err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drop replication slots of database %s: %d still active after 10s",
				database, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
