package capture

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// slotState is a row of pg_replication_slots.
type slotState struct {
	exists    bool
	plugin    string
	slotType  string
	database  string
	current   string // the database of the connection that read the row
	walStatus string // reserved, extended, unreserved or lost; empty when unknown
	confirmed change.LSN
	activePID int32
}

// readSlot reads the configured slot from pg_replication_slots.
func (r *Reader) readSlot(ctx context.Context, conn *pgx.Conn) (slotState, error) {
	var (
		st        slotState
		confirmed string
	)
	err := conn.QueryRow(ctx, `
		SELECT coalesce(plugin, ''), slot_type, coalesce(database, ''), current_database(),
		       coalesce(wal_status, ''), coalesce(confirmed_flush_lsn::text, ''),
		       coalesce(active_pid, 0)
		FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).
		Scan(&st.plugin, &st.slotType, &st.database, &st.current, &st.walStatus, &confirmed,
			&st.activePID)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, r.classify("read replication slot "+r.cfg.Slot, err)
	}
	st.exists = true

	if confirmed != "" {
		if st.confirmed, err = change.ParseLSN(confirmed); err != nil {
			return st, fmt.Errorf("read replication slot %s: confirmed_flush_lsn: %w", r.cfg.Slot, err)
		}
	}
	return st, nil
}

// checkSlot returns a PermanentError when the slot cannot be streamed from.
func (r *Reader) checkSlot(st slotState) error {
	switch {
	case !st.exists:
		return r.errSlotMissing()
	case st.slotType != "logical" || st.plugin != "pgoutput" || st.database != st.current:
		return &PermanentError{
			Kind: ErrSlotMismatch,
			Detail: fmt.Sprintf("replication slot %q is a %s slot of database %q with plugin %q",
				r.cfg.Slot, st.slotType, st.database, st.plugin),
			Hint: fmt.Sprintf("changesync needs a logical pgoutput slot of database %q, "+
				"so configure another slot name", st.current),
		}
	case st.walStatus == "lost":
		return r.errSlotLost()
	}
	return nil
}

// publicationExists reports whether the configured publication exists.
func (r *Reader) publicationExists(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var exists bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`,
		r.cfg.Publication).Scan(&exists)
	if err != nil {
		return false, r.classify("look up publication "+r.cfg.Publication, err)
	}
	return exists, nil
}

// checkSource checks that the slot and the publication can be streamed from and returns
// the slot's confirmed_flush_lsn.
func (r *Reader) checkSource(ctx context.Context, conn *pgx.Conn) (change.LSN, error) {
	st, err := r.readSlot(ctx, conn)
	if err != nil {
		return 0, err
	}
	if err := r.checkSlot(st); err != nil {
		return 0, err
	}

	exists, err := r.publicationExists(ctx, conn)
	if err != nil {
		return 0, err
	}
	if !exists {
		return 0, r.errPublicationMissing()
	}
	return st.confirmed, nil
}
