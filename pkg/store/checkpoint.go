package store

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

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
