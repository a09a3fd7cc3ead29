package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// Slots creates and drops the publication and the slot of a source.
type Slots interface {
	Setup(ctx context.Context) (created bool, err error)
	SetupWithSnapshot(ctx context.Context,
		copy func(ctx context.Context, snapshot string, consistent change.LSN) error) (created bool, err error)
	DropSlot(ctx context.Context) error
}

// PrepareConfig configures how the first run of a pipeline fills its target.
type PrepareConfig struct {
	SourceURL string
	// Snapshot copies the existing rows of every table when the slot is created.
	Snapshot bool
	Tables   []change.TableName
}

// Prepare creates the publication and the slot when they are missing. With a snapshot,
// a new slot is created with an exported snapshot whose rows are copied to the target in
// one transaction with the first checkpoint, so streaming starts where the copy ends. A
// slot without a checkpoint means an earlier copy never finished: the slot is dropped and
// the copy starts again, because its snapshot cannot be exported a second time.
func (p *Pipeline) Prepare(ctx context.Context, slots Slots, cfg PrepareConfig) error {
	if !cfg.Snapshot {
		created, err := slots.Setup(ctx)
		if err == nil && created {
			p.log.Info("replication slot created", "slot", p.cfg.Slot)
		}
		return err
	}

	_, _, found, err := p.store.Checkpoint(ctx, p.cfg.Name)
	if err != nil {
		return err
	}
	if !found {
		// Without a checkpoint nothing of this slot reached the target yet, so an
		// existing slot is safe to drop and create again with a snapshot. The
		// publication stays: it may serve other slots or belong to another role.
		if err := slots.DropSlot(ctx); err != nil {
			return fmt.Errorf("drop the slot of an unfinished snapshot: %w", err)
		}
	}
	created, err := slots.SetupWithSnapshot(ctx, func(ctx context.Context, snapshot string, consistent change.LSN) error {
		return p.copySnapshot(ctx, cfg, snapshot, consistent)
	})
	if err == nil && created {
		p.log.Info("replication slot created with snapshot", "slot", p.cfg.Slot)
	}
	return err
}

// copySnapshot copies every table as of the exported snapshot and stores the first
// checkpoint just below the slot's consistent point, in one target transaction.
func (p *Pipeline) copySnapshot(ctx context.Context, cfg PrepareConfig, snapshot string, consistent change.LSN) error {
	srcCfg, err := pgx.ParseConfig(cfg.SourceURL)
	if err != nil {
		return fmt.Errorf("parse source url: %w", err)
	}
	PinSessionSettings(srcCfg)
	src, err := pgx.ConnectConfig(ctx, srcCfg)
	if err != nil {
		return fmt.Errorf("connect to source for the snapshot: %w", err)
	}
	defer src.Close(context.WithoutCancel(ctx))

	srcTx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin snapshot transaction: %w", err)
	}
	defer srcTx.Rollback(context.WithoutCancel(ctx))
	// SET TRANSACTION SNAPSHOT takes no bind parameter, so it goes through the simple protocol.
	quoted := "'" + strings.ReplaceAll(snapshot, "'", "''") + "'"
	if _, err := src.PgConn().Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoted).ReadAll(); err != nil {
		return fmt.Errorf("import snapshot %s: %w", snapshot, err)
	}

	dst, err := p.store.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin target transaction for the snapshot: %w", err)
	}
	defer dst.Rollback(context.WithoutCancel(ctx))

	for _, table := range cfg.Tables {
		if err := p.copyTable(ctx, srcTx, dst, table, snapshot, consistent); err != nil {
			return err
		}
	}
	// Transactions that commit at or after the consistent point are not in the snapshot
	// and come from the slot, so the checkpoint sits just below it.
	if err := store.SaveCheckpoint(ctx, dst, p.cfg.Name, p.cfg.Slot, consistent-1, consistent); err != nil {
		return err
	}
	if err := dst.Commit(ctx); err != nil {
		return fmt.Errorf("commit snapshot copy: %w", err)
	}
	p.checkpoint = consistent - 1
	return nil
}

func (p *Pipeline) copyTable(ctx context.Context, src, dst pgx.Tx, table change.TableName, snapshot string,
	consistent change.LSN,
) error {
	started := time.Now()
	p.log.Info("snapshot copy started", "table", table.String(), "snapshot", snapshot)
	n, err := p.applier.CopyTable(ctx, src, dst, table)
	if err != nil {
		return err
	}
	finished := time.Now()
	lsn, err := store.LSNToBigint(consistent)
	if err != nil {
		return err
	}
	err = dbgen.New(dst).InsertSnapshot(ctx, dbgen.InsertSnapshotParams{
		Pipeline:      text(p.cfg.Name),
		SourceTable:   text(table.String()),
		TargetTable:   text(p.applier.Spec(table).Target.String()),
		RowsCopied:    pgtype.Int8{Int64: n, Valid: true},
		SnapshotName:  text(snapshot),
		ConsistentLSN: pgtype.Int8{Int64: lsn, Valid: true},
		StartedAt:     pgtype.Timestamptz{Time: started, Valid: true},
		FinishedAt:    pgtype.Timestamptz{Time: finished, Valid: true},
	})
	if err != nil {
		return fmt.Errorf("record snapshot of %s: %w", table, err)
	}
	p.log.Info("snapshot copy finished", "table", table.String(), "rows", n,
		"duration", finished.Sub(started).String())
	return nil
}

// PinSessionSettings fixes the settings that change the text format of values, so that
// what the source writes and the target reads cannot drift with database defaults.
func PinSessionSettings(cfg *pgx.ConnConfig) {
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["DateStyle"] = "ISO, MDY"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	cfg.RuntimeParams["bytea_output"] = "hex"
}
