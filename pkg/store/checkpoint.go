package store

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// LSNToBigint converts an LSN to the bigint our tables store it as. An LSN above the
// maximum bigint (2^63-1, half of the 64-bit WAL space) returns an error.
func LSNToBigint(lsn change.LSN) (int64, error) {
	if lsn > math.MaxInt64 {
		return 0, fmt.Errorf("lsn %s does not fit in a bigint column", lsn)
	}
	return int64(lsn), nil
}

// LSNFromBigint converts a stored bigint back to an LSN.
func LSNFromBigint(v int64) change.LSN {
	return change.LSN(v)
}

// Checkpoint returns the commit LSN and end LSN stored for a pipeline. found is false
// when the pipeline has no checkpoint yet.
func (s *Store) Checkpoint(ctx context.Context, pipeline string) (
	commit, end change.LSN, found bool, err error,
) {
	cp, err := dbgen.New(s.Pool).GetCheckpoint(ctx, pipeline)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read checkpoint of pipeline %q: %w", pipeline, err)
	}
	return LSNFromBigint(cp.CommitLSN), LSNFromBigint(cp.EndLSN), true, nil
}

// SaveCheckpoint stores the checkpoint of a pipeline through db, usually the transaction
// that also holds the batch's writes. A commit LSN at or below the stored one leaves the
// stored checkpoint unchanged.
func SaveCheckpoint(
	ctx context.Context, db dbgen.DBTX, pipeline, slot string, commit, end change.LSN,
) error {
	commitLSN, err := LSNToBigint(commit)
	if err != nil {
		return fmt.Errorf("save checkpoint of pipeline %q: commit %w", pipeline, err)
	}
	endLSN, err := LSNToBigint(end)
	if err != nil {
		return fmt.Errorf("save checkpoint of pipeline %q: end %w", pipeline, err)
	}

	err = dbgen.New(db).UpsertCheckpoint(ctx, dbgen.UpsertCheckpointParams{
		Pipeline:  pipeline,
		Slot:      slot,
		CommitLSN: commitLSN,
		EndLSN:    endLSN,
	})
	if err != nil {
		return fmt.Errorf("save checkpoint of pipeline %q at %s: %w", pipeline, commit, err)
	}
	return nil
}

// sqlstateUndefinedTable is the SQLSTATE of a query on a table that does not exist.
const sqlstateUndefinedTable = "42P01"

// ForgetCheckpoint deletes the checkpoint of a pipeline from the metadata schema at url
// and reports whether there was one. It connects on its own, without the enum types of
// Open, so that a schema that was never migrated, which has no checkpoint, is no error.
func ForgetCheckpoint(ctx context.Context, url, schema, pipeline string) (bool, error) {
	if err := checkSchemaName(schema); err != nil {
		return false, err
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false, fmt.Errorf("parse metadata store url: %w", err)
	}
	setSessionParams(cfg, schema)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to metadata store in schema %q: %w", schema, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	deleted, err := dbgen.New(conn).DeleteCheckpoint(ctx, pipeline)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlstateUndefinedTable {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete checkpoint of pipeline %q: %w", pipeline, err)
	}
	return deleted > 0, nil
}
