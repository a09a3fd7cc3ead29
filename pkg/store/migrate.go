package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/datasense/changesync/migrations"
)

// MigrationsTable is the table, inside the metadata schema, where golang-migrate records
// the schema version.
const MigrationsTable = "schema_migrations"

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1. The server truncates longer names, so
// the schema created would not be the one named in the configuration.
const maxIdentifierLen = 63

// Migrate creates the metadata schema if it is missing and applies the embedded
// migrations to it. A schema that is already up to date is not an error. Concurrent calls
// are safe: the schema is created under a transaction-level advisory lock, and
// golang-migrate holds a session-level advisory lock while it migrates.
func Migrate(ctx context.Context, url, schema string) error {
	if err := checkSchemaName(schema); err != nil {
		return err
	}

	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse metadata store url: %w", err)
	}
	setSessionParams(cfg, schema)

	if err := createSchema(ctx, cfg, schema); err != nil {
		return err
	}
	return runMigrations(ctx, cfg, schema)
}

// checkSchemaName rejects names that PostgreSQL would refuse or silently change.
func checkSchemaName(schema string) error {
	switch {
	case schema == "":
		return errors.New("metadata schema name is empty: set target.schema, for example to " +
			DefaultSchema)
	case len(schema) > maxIdentifierLen:
		return fmt.Errorf("metadata schema name %q is %d bytes long: PostgreSQL allows at most %d",
			schema, len(schema), maxIdentifierLen)
	case strings.ContainsRune(schema, 0):
		return fmt.Errorf("metadata schema name %q contains a NUL byte", schema)
	}
	return nil
}

// createSchema creates the schema if it is missing. CREATE SCHEMA IF NOT EXISTS alone is
// not enough when two processes run it at once: the slower one fails with a unique
// violation on pg_namespace. The advisory lock makes them take turns.
func createSchema(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to create metadata schema %q: %w", schema, err)
	}
	defer conn.Close(context.Background())

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		lockKey := "changesync create schema " + schema
		_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lockKey)
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		_, err = tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
		return err
	})
	if err != nil {
		return fmt.Errorf("create metadata schema %q: %w", schema, err)
	}
	return nil
}

// runMigrations applies the embedded migrations with golang-migrate's pgx v5 driver (the
// one behind pgx5:// URLs). The driver is built from a database handle, not a URL, so that
// schema names that need quoting reach it unchanged.
func runMigrations(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{
		SchemaName:      schema,
		MigrationsTable: MigrationsTable,
	})
	if err != nil {
		return fmt.Errorf("prepare migrations of schema %q: %w", schema, err)
	}

	source, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("read embedded migrations: %w", err)
	}

	m, err := migrate.NewWithInstance("iofs", source, "pgx5", driver)
	if err != nil {
		return fmt.Errorf("prepare migrations of schema %q: %w", schema, err)
	}
	defer m.Close()

	return up(ctx, m, schema)
}

// up applies the pending migrations. golang-migrate takes no context, so a canceled ctx
// makes it stop after the migration it is running. A stopped Up returns nil, so up
// reports the cancellation even when the last migration had already finished.
func up(ctx context.Context, m *migrate.Migrate, schema string) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-done:
		}
	}()

	err := m.Up()
	if errors.Is(err, migrate.ErrNoChange) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	return nil
}
