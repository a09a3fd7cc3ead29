package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
)

// closeTimeout bounds closing a connection and sending a cancel request.
const closeTimeout = 5 * time.Second

// copyFunc copies the published tables as of an exported snapshot. consistent is the
// slot's consistent point: transactions that commit before it are in the snapshot, and
// the others come from the slot.
type copyFunc = func(ctx context.Context, snapshot string, consistent change.LSN) error

// Setup creates the publication when it is missing, adds configured tables it lacks, and
// creates the permanent pgoutput slot when it is missing. It never drops a table from the
// publication. created reports whether the slot was created by this call.
func (r *Reader) Setup(ctx context.Context) (created bool, err error) {
	return r.setup(ctx, nil)
}

// SetupWithSnapshot does what Setup does, but when it creates the slot it exports the
// slot's snapshot and calls copyTables with the snapshot name and the consistent point. The
// replication connection that exports the snapshot stays open and unused until
// copyTables returns, because any command on it would end the snapshot. When the slot
// already exists, copyTables is not called. When it fails, the slot stays and created is
// true.
func (r *Reader) SetupWithSnapshot(ctx context.Context,
	copyTables func(ctx context.Context, snapshot string, consistent change.LSN) error,
) (created bool, err error) {
	if copyTables == nil {
		return false, errors.New("set up with snapshot: copy function is nil")
	}
	return r.setup(ctx, copyTables)
}

func (r *Reader) setup(ctx context.Context, copyTables copyFunc) (bool, error) {
	conn, err := r.connect(ctx)
	if err != nil {
		return false, err
	}
	defer closeConn(conn)

	if err := r.ensurePublication(ctx, conn); err != nil {
		return false, err
	}

	st, err := r.readSlot(ctx, conn)
	if err != nil {
		return false, err
	}
	if st.exists {
		return false, r.checkSlot(st)
	}
	return r.createSlot(ctx, copyTables)
}

// ensurePublication creates the publication FOR TABLE the configured tables, or adds the
// configured tables that an existing publication lacks.
func (r *Reader) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	var allTables bool
	err := conn.QueryRow(ctx, `SELECT puballtables FROM pg_publication WHERE pubname = $1`,
		r.cfg.Publication).Scan(&allTables)
	if errors.Is(err, pgx.ErrNoRows) {
		return r.createPublication(ctx, conn)
	}
	if err != nil {
		return r.classify("look up publication "+r.cfg.Publication, err)
	}
	if allTables {
		return nil
	}

	missing, err := r.missingTables(ctx, conn)
	if err != nil || len(missing) == 0 {
		return err
	}
	sql := "ALTER PUBLICATION " + pgx.Identifier{r.cfg.Publication}.Sanitize() +
		" ADD TABLE " + tableList(missing)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return r.classify("add tables to publication "+r.cfg.Publication, err)
	}
	r.log.Info("publication altered", logPublication, r.cfg.Publication,
		logTables, tableNames(missing))
	return nil
}

func (r *Reader) createPublication(ctx context.Context, conn *pgx.Conn) error {
	sql := "CREATE PUBLICATION " + pgx.Identifier{r.cfg.Publication}.Sanitize()
	if len(r.cfg.Tables) > 0 {
		sql += " FOR TABLE " + tableList(r.cfg.Tables)
	}
	// The changes of a partitioned table's partitions, including partitions created
	// later, arrive as changes of the configured parent.
	sql += " WITH (publish_via_partition_root = true)"
	if _, err := conn.Exec(ctx, sql); err != nil {
		return r.classify("create publication "+r.cfg.Publication, err)
	}
	r.log.Info("publication created", logPublication, r.cfg.Publication,
		logTables, tableNames(r.cfg.Tables))
	return nil
}

// missingTables returns the configured tables that the publication does not contain.
func (r *Reader) missingTables(ctx context.Context, conn *pgx.Conn) ([]change.TableName, error) {
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables
		WHERE pubname = $1`, r.cfg.Publication)
	if err != nil {
		return nil, r.classify("list tables of publication "+r.cfg.Publication, err)
	}
	published := map[change.TableName]bool{}
	var t change.TableName
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name}, func() error {
		published[t] = true
		return nil
	})
	if err != nil {
		return nil, r.classify("list tables of publication "+r.cfg.Publication, err)
	}

	var missing []change.TableName
	for _, t := range r.cfg.Tables {
		if !published[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// createSlot creates the permanent pgoutput slot on a replication connection and, when
// copyTables is set, runs it while the connection holds the exported snapshot.
func (r *Reader) createSlot(ctx context.Context, copyTables copyFunc) (bool, error) {
	conn, err := r.connectReplication(ctx)
	if err != nil {
		return false, err
	}
	defer closeConn(conn)

	action := "NOEXPORT_SNAPSHOT"
	if copyTables != nil {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := r.createSlotCommand(ctx, conn, action)
	if sqlstate(err) == sqlstateDuplicateObject {
		return false, nil // another process created it since readSlot
	}
	if err != nil {
		return false, err
	}
	consistent, err := change.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return true, fmt.Errorf("create replication slot %s: consistent point: %w", r.cfg.Slot, err)
	}
	r.log.Info("replication slot created", logSlot, r.cfg.Slot, logLSN, consistent.String())

	if copyTables == nil {
		return true, nil
	}
	if err := copyTables(ctx, res.SnapshotName, consistent); err != nil {
		return true, fmt.Errorf("copy tables as of snapshot %s: %w", res.SnapshotName, err)
	}
	return true, nil
}

// createSlotCommand runs CREATE_REPLICATION_SLOT. The command waits for every open
// transaction that has an xid, so after SlotTimeout a cancel request stops it, and the
// server drops the half-made slot.
func (r *Reader) createSlotCommand(ctx context.Context, conn *pgconn.PgConn, action string,
) (pglogrepl.CreateReplicationSlotResult, error) {
	var timedOut atomic.Bool
	timer := time.AfterFunc(r.cfg.SlotTimeout, func() {
		timedOut.Store(true)
		cancelCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		// A failed cancel request leaves the command waiting until ctx ends, and there is
		// nothing better to do about it here.
		_ = conn.CancelRequest(cancelCtx)
	})
	defer timer.Stop()

	opts := pglogrepl.CreateReplicationSlotOptions{
		Mode:           pglogrepl.LogicalReplication,
		SnapshotAction: action,
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, r.cfg.Slot, "pgoutput", opts)
	if err != nil && timedOut.Load() {
		return res, fmt.Errorf("create replication slot %s: timed out after %s waiting for open "+
			"transactions to end: slot creation waits for every transaction that has an xid, "+
			"so end those with backend_xid set in pg_stat_activity or raise the slot timeout: %w",
			r.cfg.Slot, r.cfg.SlotTimeout, err)
	}
	if err != nil {
		return res, r.classify("create replication slot "+r.cfg.Slot, err)
	}
	return res, nil
}

// Teardown drops the slot and the publication, each only if it exists. It fails while
// a process streams from the slot.
func (r *Reader) Teardown(ctx context.Context) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)

	slotDropped, err := r.dropSlot(ctx, conn)
	if err != nil {
		return err
	}

	exists, err := r.publicationExists(ctx, conn)
	if err != nil || !exists {
		return err
	}
	sql := "DROP PUBLICATION " + pgx.Identifier{r.cfg.Publication}.Sanitize()
	if _, err := conn.Exec(ctx, sql); err != nil {
		return r.errDropPublication(err, slotDropped)
	}
	r.log.Info("publication dropped", logPublication, r.cfg.Publication)
	return nil
}

// errDropPublication classifies a failed DROP PUBLICATION, and its message states whether
// the slot was dropped before it. A permission error gets its own hint, because dropping a
// publication needs ownership of it, which neither REPLICATION nor ownership of the
// tables gives.
func (r *Reader) errDropPublication(err error, slotDropped bool) error {
	step := "drop publication " + r.cfg.Publication
	if slotDropped {
		step = "replication slot " + r.cfg.Slot + " is dropped, but " + step
	}
	if sqlstate(err) != sqlstateInsufficientPrivilege {
		return r.classify(step, err)
	}

	publication := pgx.Identifier{r.cfg.Publication}.Sanitize()
	return &PermanentError{
		Kind:   ErrPermission,
		Detail: fmt.Sprintf("%s as role %q", step, r.connCfg.User),
		Hint: fmt.Sprintf("dropping a publication needs ownership of it, so run DROP PUBLICATION "+
			"%s as its owner or a superuser, or ALTER PUBLICATION %s OWNER TO %s; then run "+
			"changesync teardown again, which deletes the pipeline's checkpoint",
			publication, publication, pgx.Identifier{r.connCfg.User}.Sanitize()),
		Err: err,
	}
}

// DropSlot drops the replication slot when it exists and leaves the publication, which
// other slots may use.
func (r *Reader) DropSlot(ctx context.Context) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	_, err = r.dropSlot(ctx, conn)
	return err
}

// dropSlot drops the slot when it exists and reports whether it did.
func (r *Reader) dropSlot(ctx context.Context, conn *pgx.Conn) (dropped bool, err error) {
	st, err := r.readSlot(ctx, conn)
	if err != nil || !st.exists {
		return false, err
	}
	if st.activePID != 0 {
		return false, fmt.Errorf("drop replication slot %s: process %d is streaming from it, "+
			"so stop the changesync that reads the slot first", r.cfg.Slot, st.activePID)
	}

	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", r.cfg.Slot); err != nil {
		return false, r.classify("drop replication slot "+r.cfg.Slot, err)
	}
	r.log.Info("replication slot dropped", logSlot, r.cfg.Slot)
	return true, nil
}

// tableList returns the tables quoted and separated by commas, for SQL.
func tableList(tables []change.TableName) string {
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = t.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// tableNames returns the tables as schema.name strings, for logs.
func tableNames(tables []change.TableName) []string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	return names
}
