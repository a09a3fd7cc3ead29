package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

var (
	testThread     = change.ThreadID("test_slot", 0x16B374D848)
	testCommitTime = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
)

// openStore migrates a fresh database and opens the store on it.
func openStore(t *testing.T, ctx context.Context) *Store {
	t.Helper()
	url := pgtest.NewDB(t)
	if err := Migrate(ctx, url, DefaultSchema); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := Open(ctx, url, DefaultSchema)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// newEvent returns an update of row rowKey of crm.customers, as the pipeline would record it.
func newEvent(rowKey string, status dbgen.ChangeStatus) dbgen.InsertChangeEventsParams {
	return dbgen.InsertChangeEventsParams{
		ID:          uuid.New(),
		Pipeline:    "crm",
		ThreadID:    testThread,
		RowKey:      rowKey,
		TableName:   "crm.customers",
		TargetTable: pgtype.Text{String: "billing.customers", Valid: true},
		ChangeType:  dbgen.ChangeTypeUpdate,
		OldData:     rowJSON(rowKey, "10115"),
		NewData:     rowJSON(rowKey, "80331"),
		DetectedAt:  time.Now().UTC().Truncate(time.Microsecond),
		Status:      status,
		SourceLSN:   0x16B374D848,
		Xid:         4242,
		CommitTime:  testCommitTime,
	}
}

// rowJSON returns old_data or new_data of a customer row.
func rowJSON(id, zip string) json.RawMessage {
	b, err := json.Marshal(map[string]any{"id": id, "zip": zip, "note": nil})
	if err != nil {
		panic(err)
	}
	return b
}

func insertEvents(
	t *testing.T, ctx context.Context, db dbgen.DBTX, events ...dbgen.InsertChangeEventsParams,
) {
	t.Helper()
	n, err := dbgen.New(db).InsertChangeEvents(ctx, events)
	if err != nil {
		t.Fatalf("InsertChangeEvents: %v", err)
	}
	if n != int64(len(events)) {
		t.Fatalf("InsertChangeEvents copied %d rows, want %d", n, len(events))
	}
}

func TestOpenUnmigratedSchema(t *testing.T) {
	ctx := testContext(t)
	url := pgtest.NewDB(t)

	s, err := Open(ctx, url, DefaultSchema)
	if err == nil {
		s.Close()
		t.Fatal("Open of an unmigrated schema succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "migrate") {
		t.Errorf("error %q does not tell to run migrate", err)
	}
}

func TestOpenPinsSessionSettings(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)

	want := map[string]string{
		"search_path":        `"changesync", public`,
		"TimeZone":           "UTC",
		"DateStyle":          "ISO, MDY",
		"IntervalStyle":      "postgres",
		"extra_float_digits": "3",
		"bytea_output":       "hex",
	}
	for name, value := range want {
		var got string
		if err := s.Pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatalf("read setting %s: %v", name, err)
		}
		if got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
}

func TestOpenRegistersEnumTypes(t *testing.T) {
	for _, schema := range []string{DefaultSchema, "Change-Meta"} {
		t.Run(schema, func(t *testing.T) {
			ctx := testContext(t)
			url := pgtest.NewDB(t)
			if err := Migrate(ctx, url, schema); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			s, err := Open(ctx, url, schema)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()

			conn, err := s.Pool.Acquire(ctx)
			if err != nil {
				t.Fatalf("acquire connection: %v", err)
			}
			defer conn.Release()

			for _, name := range enumTypes {
				var oid uint32
				err := conn.QueryRow(ctx, "SELECT $1::regtype::oid",
					pgx.Identifier{schema, name}.Sanitize()).Scan(&oid)
				if err != nil {
					t.Fatalf("look up type %s: %v", name, err)
				}
				typ, ok := conn.Conn().TypeMap().TypeForOID(oid)
				if !ok {
					t.Errorf("type %s (oid %d) is not in the connection's type map", name, oid)
					continue
				}
				if _, isEnum := typ.Codec.(*pgtype.EnumCodec); !isEnum {
					t.Errorf("type %s has codec %T, want an enum codec", name, typ.Codec)
				}
			}
		})
	}
}

func TestCopyChangeEventsRoundTrip(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)
	q := s.Queries(s.Pool)

	first := newEvent("42", dbgen.ChangeStatusApproved)
	first.Seq = 0
	first.DecisionReason = pgtype.Text{String: "zip is valid", Valid: true}
	first.DecidedBy = pgtype.Text{String: "zip-is-valid", Valid: true}
	first.Actor = pgtype.Text{String: "alice", Valid: true}

	second := newEvent(`["7","b"]`, dbgen.ChangeStatusFailed)
	second.Seq = 1
	second.ChangeType = dbgen.ChangeTypeInsert
	second.OldData = nil
	second.TargetTable = pgtype.Text{}
	second.Error = pgtype.Text{String: "target table missing", Valid: true}

	insertEvents(t, ctx, s.Pool, first, second)

	got, err := q.GetChangeEvent(ctx, first.ID)
	if err != nil {
		t.Fatalf("GetChangeEvent: %v", err)
	}
	checkEvent(t, got, first)

	got, err = q.GetChangeEvent(ctx, second.ID)
	if err != nil {
		t.Fatalf("GetChangeEvent: %v", err)
	}
	checkEvent(t, got, second)
	if got.OldData != nil {
		t.Errorf("old_data = %s, want NULL", got.OldData)
	}

	byThread, err := q.ListChangeEventsByThread(ctx, testThread)
	if err != nil {
		t.Fatalf("ListChangeEventsByThread: %v", err)
	}
	if len(byThread) != 2 {
		t.Fatalf("ListChangeEventsByThread returned %d events, want 2", len(byThread))
	}
	if byThread[0].ID != first.ID {
		t.Errorf("ListChangeEventsByThread()[0] = %s, want the event with seq 0", byThread[0].ID)
	}
	if byThread[1].ID != second.ID {
		t.Errorf("ListChangeEventsByThread()[1] = %s, want the event with seq 1", byThread[1].ID)
	}

	byRow, err := q.ListChangeEventsByRow(ctx, dbgen.ListChangeEventsByRowParams{
		TableName: "crm.customers", RowKey: `["7","b"]`,
	})
	if err != nil {
		t.Fatalf("ListChangeEventsByRow: %v", err)
	}
	if len(byRow) != 1 {
		t.Fatalf("ListChangeEventsByRow returned %d events, want 1", len(byRow))
	}
	if byRow[0].ID != second.ID {
		t.Errorf("ListChangeEventsByRow()[0] = %s, want the event of row [\"7\",\"b\"]", byRow[0].ID)
	}

	count, err := q.CountChangeEvents(ctx, "crm")
	if err != nil {
		t.Fatalf("CountChangeEvents: %v", err)
	}
	if count != 2 {
		t.Errorf("CountChangeEvents = %d, want 2", count)
	}
}

// checkEvent compares a stored change event with the parameters it was copied from.
func checkEvent(t *testing.T, got dbgen.ChangeEvent, want dbgen.InsertChangeEventsParams) {
	t.Helper()
	fields := []struct {
		column    string
		got, want any
	}{
		{"pipeline", got.Pipeline, want.Pipeline},
		{"thread_id", got.ThreadID, want.ThreadID},
		{"seq", got.Seq, want.Seq},
		{"row_key", got.RowKey, want.RowKey},
		{"table_name", got.TableName, want.TableName},
		{"target_table", got.TargetTable, want.TargetTable},
		{"change_type", got.ChangeType, want.ChangeType},
		{"status", got.Status, want.Status},
		{"source_lsn", got.SourceLSN, want.SourceLSN},
		{"xid", got.Xid, want.Xid},
		{"decision_reason", got.DecisionReason, want.DecisionReason},
		{"decided_by", got.DecidedBy, want.DecidedBy},
		{"actor", got.Actor, want.Actor},
		{"error", got.Error, want.Error},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.column, f.got, f.want)
		}
	}

	checkJSON(t, "old_data", got.OldData, want.OldData)
	checkJSON(t, "new_data", got.NewData, want.NewData)

	if !got.DetectedAt.Equal(want.DetectedAt) {
		t.Errorf("detected_at = %v, want %v", got.DetectedAt, want.DetectedAt)
	}
	if !got.CommitTime.Equal(want.CommitTime) {
		t.Errorf("commit_time = %v, want %v", got.CommitTime, want.CommitTime)
	}
	if got.UndoToken == uuid.Nil {
		t.Error("undo_token is the nil UUID, want a generated one")
	}
}

// checkJSON compares two JSON documents by value, since jsonb does not keep spacing or
// key order.
func checkJSON(t *testing.T, column string, got, want json.RawMessage) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Errorf("%s = %s, want NULL", column, got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s = %s is not JSON: %v", column, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("expected %s %s is not JSON: %v", column, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s = %s, want %s", column, gb, wb)
	}
}

func TestCopySyncLogRoundTrip(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)
	q := s.Queries(s.Pool)

	ev := newEvent("42", dbgen.ChangeStatusSynced)
	insertEvents(t, ctx, s.Pool, ev)

	syncedAt := time.Date(2025, 3, 14, 9, 27, 0, 0, time.UTC)
	entry := dbgen.InsertSyncLogParams{
		ID:            uuid.New(),
		ChangeEventID: ev.ID,
		SourceTable:   "crm.customers",
		TargetTable:   "billing.customers",
		SourceID:      "42",
		TargetKey:     json.RawMessage(`{"id": "42"}`),
		Diff: json.RawMessage(
			`{"zip": {"old": "10115", "new": "80331"}, "note": {"old": null, "new": ""}}`),
		SyncedAt:    syncedAt,
		PerformedBy: "zip-is-valid",
		Op:          dbgen.ChangeTypeUpdate,
	}
	n, err := q.InsertSyncLog(ctx, []dbgen.InsertSyncLogParams{entry})
	if err != nil {
		t.Fatalf("InsertSyncLog: %v", err)
	}
	if n != 1 {
		t.Fatalf("InsertSyncLog copied %d rows, want 1", n)
	}

	logs, err := q.ListSyncLogByChange(ctx, ev.ID)
	if err != nil {
		t.Fatalf("ListSyncLogByChange: %v", err)
	}
	if len(logs) != 1 {
		t.Fatalf("ListSyncLogByChange returned %d rows, want 1", len(logs))
	}
	got := logs[0]
	fields := []struct {
		column    string
		got, want any
	}{
		{"id", got.ID, entry.ID},
		{"change_event_id", got.ChangeEventID, entry.ChangeEventID},
		{"source_table", got.SourceTable, entry.SourceTable},
		{"target_table", got.TargetTable, entry.TargetTable},
		{"source_id", got.SourceID, entry.SourceID},
		{"performed_by", got.PerformedBy, entry.PerformedBy},
		{"op", got.Op, entry.Op},
		{"undo_status", got.UndoStatus, "none"},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.column, f.got, f.want)
		}
	}
	if !got.SyncedAt.Equal(syncedAt) {
		t.Errorf("synced_at = %v, want %v", got.SyncedAt, syncedAt)
	}
	checkJSON(t, "target_key", got.TargetKey, entry.TargetKey)
	checkJSON(t, "diff", got.Diff, entry.Diff)
}

func TestCopySyncLogUnknownChange(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)

	_, err := s.Queries(s.Pool).InsertSyncLog(ctx, []dbgen.InsertSyncLogParams{{
		ID:            uuid.New(),
		ChangeEventID: uuid.New(),
		SourceTable:   "crm.customers",
		TargetTable:   "billing.customers",
		SourceID:      "42",
		Diff:          json.RawMessage(`{}`),
		SyncedAt:      time.Now(),
		PerformedBy:   "test",
		Op:            dbgen.ChangeTypeDelete,
	}})
	if code := sqlState(err); code != "23503" {
		t.Errorf("InsertSyncLog for a missing change event: error %v (SQLSTATE %q), want 23503",
			err, code)
	}
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestGeneratedColumnsFollowStatus(t *testing.T) {
	tests := []struct {
		status        dbgen.ChangeStatus
		wantValidated bool
		wantSynced    bool
	}{
		{dbgen.ChangeStatusDetected, false, false},
		{dbgen.ChangeStatusApproved, true, false},
		{dbgen.ChangeStatusSkipped, true, false},
		{dbgen.ChangeStatusRejected, true, false},
		{dbgen.ChangeStatusHeld, true, false},
		{dbgen.ChangeStatusBlocked, true, false},
		{dbgen.ChangeStatusSynced, true, true},
		{dbgen.ChangeStatusUndone, true, true},
		{dbgen.ChangeStatusFailed, true, false},
	}
	if len(tests) != len(dbgen.AllChangeStatusValues()) {
		t.Fatalf("table covers %d statuses, the enum has %d",
			len(tests), len(dbgen.AllChangeStatusValues()))
	}

	ctx := testContext(t)
	s := openStore(t, ctx)
	q := s.Queries(s.Pool)
	ev := newEvent("42", dbgen.ChangeStatusDetected)
	insertEvents(t, ctx, s.Pool, ev)

	// One row moves through every status, so the generated columns are checked on UPDATE;
	// the copy above checked them on insert for detected.
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			_, err := s.Pool.Exec(ctx, "UPDATE change_events SET status = $1 WHERE id = $2",
				tt.status, ev.ID)
			if err != nil {
				t.Fatalf("set status %s: %v", tt.status, err)
			}
			got, err := q.GetChangeEvent(ctx, ev.ID)
			if err != nil {
				t.Fatalf("GetChangeEvent: %v", err)
			}
			if got.Validated != tt.wantValidated {
				t.Errorf("validated = %v, want %v", got.Validated, tt.wantValidated)
			}
			if got.Synced != tt.wantSynced {
				t.Errorf("synced = %v, want %v", got.Synced, tt.wantSynced)
			}
		})
	}

	_, err := s.Pool.Exec(ctx, "UPDATE change_events SET synced = true WHERE id = $1", ev.ID)
	if code := sqlState(err); code != "428C9" {
		t.Errorf("writing synced directly: error %v (SQLSTATE %q), want 428C9", err, code)
	}
}

func TestUndoAppliedOncePerChange(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)
	first := newEvent("42", dbgen.ChangeStatusSynced)
	second := newEvent("43", dbgen.ChangeStatusSynced)
	insertEvents(t, ctx, s.Pool, first, second)

	insertUndo := func(change uuid.UUID, status dbgen.UndoStatus) error {
		_, err := s.Pool.Exec(ctx, `INSERT INTO undo_requests
			(request_id, change_event, requestor, status) VALUES ($1, $2, 'admin', $3)`,
			uuid.New(), change, status)
		return err
	}

	steps := []struct {
		name      string
		change    uuid.UUID
		status    dbgen.UndoStatus
		wantState string
	}{
		{"conflict first", first.ID, dbgen.UndoStatusConflict, ""},
		{"planned", first.ID, dbgen.UndoStatusPlanned, ""},
		{"applied", first.ID, dbgen.UndoStatusApplied, ""},
		{"conflict after applied", first.ID, dbgen.UndoStatusConflict, ""},
		{"applied again", first.ID, dbgen.UndoStatusApplied, "23505"},
		{"applied other change", second.ID, dbgen.UndoStatusApplied, ""},
	}
	for _, step := range steps {
		err := insertUndo(step.change, step.status)
		if step.wantState == "" {
			if err != nil {
				t.Errorf("%s: %v, want the row inserted", step.name, err)
			}
			continue
		}
		if got := sqlState(err); got != step.wantState {
			t.Errorf("%s: error %v (SQLSTATE %q), want SQLSTATE %s", step.name, err, got, step.wantState)
		}
	}
}

func TestSnapshotsAndOutbox(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)
	q := s.Queries(s.Pool)

	started := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	snap := dbgen.InsertSnapshotParams{
		Pipeline:      pgtype.Text{String: "crm", Valid: true},
		SourceTable:   pgtype.Text{String: "crm.customers", Valid: true},
		TargetTable:   pgtype.Text{String: "billing.customers", Valid: true},
		RowsCopied:    pgtype.Int8{Int64: 1234, Valid: true},
		SnapshotName:  pgtype.Text{String: "00000003-00000002-1", Valid: true},
		ConsistentLSN: pgtype.Int8{Int64: 0x16B374D848, Valid: true},
		StartedAt:     pgtype.Timestamptz{Time: started, Valid: true},
		FinishedAt:    pgtype.Timestamptz{Time: started.Add(time.Minute), Valid: true},
	}
	if err := q.InsertSnapshot(ctx, snap); err != nil {
		t.Fatalf("InsertSnapshot: %v", err)
	}
	other := snap
	other.Pipeline = pgtype.Text{String: "erp", Valid: true}
	if err := q.InsertSnapshot(ctx, other); err != nil {
		t.Fatalf("InsertSnapshot: %v", err)
	}

	snaps, err := q.ListSnapshots(ctx, pgtype.Text{String: "crm", Valid: true})
	if err != nil {
		t.Fatalf("ListSnapshots: %v", err)
	}
	if len(snaps) != 1 {
		t.Fatalf("ListSnapshots returned %d rows, want 1", len(snaps))
	}
	if snaps[0].RowsCopied != snap.RowsCopied {
		t.Errorf("rows_copied = %v, want %v", snaps[0].RowsCopied, snap.RowsCopied)
	}
	if snaps[0].ConsistentLSN != snap.ConsistentLSN {
		t.Errorf("consistent_lsn = %v, want %v", snaps[0].ConsistentLSN, snap.ConsistentLSN)
	}
	if snaps[0].SnapshotName != snap.SnapshotName {
		t.Errorf("snapshot_name = %v, want %v", snaps[0].SnapshotName, snap.SnapshotName)
	}
	if !snaps[0].StartedAt.Time.Equal(started) {
		t.Errorf("started_at = %v, want %v", snaps[0].StartedAt.Time, started)
	}

	payload := json.RawMessage(`{"change_id": "x", "status": "held"}`)
	err = q.InsertOutbox(ctx, dbgen.InsertOutboxParams{EventType: "hold", Payload: payload})
	if err != nil {
		t.Fatalf("InsertOutbox: %v", err)
	}
	var pending int
	err = s.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox
		WHERE delivered_at IS NULL AND failed_at IS NULL AND attempts = 0`).Scan(&pending)
	if err != nil {
		t.Fatalf("count pending outbox rows: %v", err)
	}
	if pending != 1 {
		t.Errorf("pending outbox rows = %d, want 1", pending)
	}
}

func TestInTxRollsBack(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)
	errStop := errors.New("stop")

	err := s.InTx(ctx, func(_ pgx.Tx, q *dbgen.Queries) error {
		events := []dbgen.InsertChangeEventsParams{newEvent("42", dbgen.ChangeStatusHeld)}
		if _, err := q.InsertChangeEvents(ctx, events); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx error = %v, want the error of fn", err)
	}

	count, err := s.Queries(s.Pool).CountChangeEvents(ctx, "crm")
	if err != nil {
		t.Fatalf("CountChangeEvents: %v", err)
	}
	if count != 0 {
		t.Errorf("%d change events after rollback, want 0", count)
	}
}
