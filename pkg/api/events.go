package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/labstack/echo/v4"

	"github.com/datasense/changesync/pkg/store/dbgen"
	"github.com/datasense/changesync/pkg/undo"
)

// Page sizes of GET /change-events/.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// ChangeEvent is one change event of the audit trail.
type ChangeEvent struct {
	ID             uuid.UUID       `json:"id"`
	Pipeline       string          `json:"pipeline"`
	ThreadID       uuid.UUID       `json:"thread_id"`
	Seq            int32           `json:"seq"`
	TableName      string          `json:"table_name"`
	TargetTable    *string         `json:"target_table"`
	RowKey         string          `json:"row_key"`
	ChangeType     string          `json:"change_type"`
	Status         string          `json:"status"`
	Validated      bool            `json:"validated"`
	Synced         bool            `json:"synced"`
	OldData        json.RawMessage `json:"old_data"`
	NewData        json.RawMessage `json:"new_data"`
	DetectedAt     time.Time       `json:"detected_at"`
	DecisionReason *string         `json:"decision_reason"`
	DecidedBy      *string         `json:"decided_by"`
	Actor          *string         `json:"actor"`
	SourceLSN      int64           `json:"source_lsn"`
	XID            int64           `json:"xid"`
	CommitTime     time.Time       `json:"commit_time"`
	UndoToken      uuid.UUID       `json:"undo_token"`
	Error          *string         `json:"error"`
}

// ChangeEventPage is the body of GET /change-events/. NextCursor is empty on the last page.
type ChangeEventPage struct {
	Items      []ChangeEvent `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

// ChangeEventDetail is the body of GET /change-events/{id}: the event with its target
// writes and its undo requests.
type ChangeEventDetail struct {
	ChangeEvent
	SyncLog      []SyncLogEntry `json:"sync_log"`
	UndoRequests []UndoEntry    `json:"undo_requests"`
}

// SyncLogEntry is one target write: of the change itself, or of an undo of it.
type SyncLogEntry struct {
	ID          uuid.UUID       `json:"id"`
	SourceTable string          `json:"source_table"`
	TargetTable string          `json:"target_table"`
	RowKey      string          `json:"row_key"`
	TargetKey   json.RawMessage `json:"target_key"`
	Diff        json.RawMessage `json:"diff"`
	SyncedAt    time.Time       `json:"synced_at"`
	PerformedBy string          `json:"performed_by"`
	UndoStatus  string          `json:"undo_status"`
	Op          string          `json:"op"`
	UndoRequest *uuid.UUID      `json:"undo_request"`
}

// UndoEntry is the outcome of one undo request for one change.
type UndoEntry struct {
	ID        uuid.UUID       `json:"id"`
	RequestID uuid.UUID       `json:"request_id"`
	ChangeID  uuid.UUID       `json:"change_id"`
	Requestor string          `json:"requestor"`
	Reason    string          `json:"reason"`
	Status    string          `json:"status"`
	Forced    bool            `json:"forced"`
	CreatedAt *time.Time      `json:"created_at"`
	UndoneAt  *time.Time      `json:"undone_at"`
	Conflicts json.RawMessage `json:"conflicts"`
	Error     *string         `json:"error"`
}

// UndoRequestDetail is the body of GET /undo-requests/{id}.
type UndoRequestDetail struct {
	RequestID uuid.UUID   `json:"request_id"`
	Requestor string      `json:"requestor"`
	Reason    string      `json:"reason"`
	Status    string      `json:"status"`
	Changes   []UndoEntry `json:"changes"`
}

// Status is the body of GET /status/{change_id}. Synced is true once the target has the
// change's values, which needs no write when it had them already; TargetWritten and
// SyncedAt tell whether and when changesync wrote them (the change's sync_log row).
type Status struct {
	ChangeID       uuid.UUID  `json:"change_id"`
	Status         string     `json:"status"`
	Validated      bool       `json:"validated"`
	Synced         bool       `json:"synced"`
	TargetWritten  bool       `json:"target_written"`
	ReleaseRunning bool       `json:"release_running"`
	UndoStatus     string     `json:"undo_status"`
	DetectedAt     time.Time  `json:"detected_at"`
	DecidedBy      *string    `json:"decided_by"`
	SyncedAt       *time.Time `json:"synced_at"`
	UndoneAt       *time.Time `json:"undone_at"`
}

func (s *Server) listChangeEvents(c echo.Context) error {
	params, err := listParams(c)
	if err != nil {
		return err
	}
	rows, err := s.cfg.Store.Queries(s.cfg.Store.Pool).ListChangeEventsPage(c.Request().Context(), params)
	if err != nil {
		return err
	}

	page := ChangeEventPage{Items: make([]ChangeEvent, 0, len(rows))}
	for i := range rows {
		page.Items = append(page.Items, changeEventJSON(&rows[i]))
	}
	if len(rows) == int(params.PageSize) {
		last := rows[len(rows)-1]
		page.NextCursor = encodeCursor(pagePosition{
			DetectedAt: last.DetectedAt, SourceLSN: last.SourceLSN, Seq: last.Seq, ID: last.ID,
		})
	}
	return c.JSON(http.StatusOK, page)
}

// listParams reads the filters, the cursor and the limit of GET /change-events/.
func listParams(c echo.Context) (dbgen.ListChangeEventsPageParams, error) {
	p := dbgen.ListChangeEventsPageParams{PageSize: defaultLimit}
	q := c.QueryParams()
	for name := range q {
		if !listFilters[name] {
			return p, badParam("unknown query parameter %q; use table, row_key, status, change_type, "+
				"thread_id, actor, since, until, cursor or limit", name)
		}
	}

	table, err := tableParam(q.Get("table"))
	if err != nil {
		return p, err
	}
	p.TableName = optText(table)
	p.RowKey = optText(q.Get("row_key"))
	p.Actor = optText(q.Get("actor"))
	if v := q.Get("status"); v != "" {
		p.Status = dbgen.NullChangeStatus{ChangeStatus: dbgen.ChangeStatus(v), Valid: true}
		if !p.Status.ChangeStatus.Valid() {
			return p, badParam("status %q is not a change status; use one of %s", v, statusNames())
		}
	}
	if v := q.Get("change_type"); v != "" {
		p.ChangeType = dbgen.NullChangeType{ChangeType: dbgen.ChangeType(v), Valid: true}
		if !p.ChangeType.ChangeType.Valid() {
			return p, badParam("change_type %q is invalid; use insert, update, delete or truncate", v)
		}
	}
	if p.ThreadID, err = optUUID("thread_id", q.Get("thread_id")); err != nil {
		return p, err
	}
	if p.Since, err = optTime("since", q.Get("since")); err != nil {
		return p, err
	}
	if p.Until, err = optTime("until", q.Get("until")); err != nil {
		return p, err
	}
	if p.Since.Valid && p.Until.Valid && !p.Until.Time.After(p.Since.Time) {
		return p, badParam("until %s is not after since %s; swap them or widen the range",
			q.Get("until"), q.Get("since"))
	}
	if v := q.Get("cursor"); v != "" {
		pos, ok := decodeCursor(v)
		if !ok {
			return p, badParam("cursor %q is invalid; pass the next_cursor of the previous page unchanged, "+
				"or start again from the first page", v)
		}
		p.AfterDetectedAt = pgtype.Timestamptz{Time: pos.DetectedAt, Valid: true}
		p.AfterSourceLsn = pgtype.Int8{Int64: pos.SourceLSN, Valid: true}
		p.AfterSeq = pgtype.Int4{Int32: pos.Seq, Valid: true}
		p.AfterID = uuid.NullUUID{UUID: pos.ID, Valid: true}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, badParam("limit %q is invalid; use a whole number from 1 to %d", v, maxLimit)
		}
		p.PageSize = int32(n) //nolint:gosec // G115: n is at most maxLimit
	}
	return p, nil
}

var listFilters = map[string]bool{
	"table": true, "row_key": true, "status": true, "change_type": true, "thread_id": true,
	"actor": true, "since": true, "until": true, "cursor": true, "limit": true,
}

func statusNames() string {
	names := make([]string, 0, len(dbgen.AllChangeStatusValues()))
	for _, v := range dbgen.AllChangeStatusValues() {
		names = append(names, string(v))
	}
	return strings.Join(names, ", ")
}

// tableParam returns the table query parameter in the form the audit trail stores, or
// "" when it is empty.
func tableParam(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	name, err := undo.StoredTableName(v)
	if err != nil {
		return "", badParam("table: %s; write schema.table as stored in table_name, or quote each part "+
			"as SQL does, such as \"Mixed\".\"Case Table\"", err)
	}
	return name, nil
}

func optText(v string) pgtype.Text { return pgtype.Text{String: v, Valid: v != ""} }

func optUUID(name, v string) (uuid.NullUUID, error) {
	if v == "" {
		return uuid.NullUUID{}, nil
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.NullUUID{}, badParam("%s %q is not a UUID; use the form 0190a8e2-7c1d-7b3e-9f00-4a5b6c7d8e9f", name, v)
	}
	return uuid.NullUUID{UUID: id, Valid: true}, nil
}

func optTime(name, v string) (pgtype.Timestamptz, error) {
	if v == "" {
		return pgtype.Timestamptz{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return pgtype.Timestamptz{}, badParam("%s %q is not an RFC 3339 time; use a form such as "+
			"2024-05-01T12:00:00Z", name, v)
	}
	return pgtype.Timestamptz{Time: t, Valid: true}, nil
}

// pagePosition is the sort key of the last event of a page, (detected_at, source_lsn,
// seq, id), which the next page starts after.
type pagePosition struct {
	DetectedAt time.Time
	SourceLSN  int64
	Seq        int32
	ID         uuid.UUID
}

// encodeCursor returns an opaque cursor for the position after pos.
func encodeCursor(pos pagePosition) string {
	raw := strings.Join([]string{
		pos.DetectedAt.UTC().Format(time.RFC3339Nano), strconv.FormatInt(pos.SourceLSN, 10),
		strconv.FormatInt(int64(pos.Seq), 10), pos.ID.String(),
	}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor reads a cursor of encodeCursor. A cursor of a version that ordered by
// (detected_at, id) alone has two fields and is rejected as invalid.
func decodeCursor(cursor string) (pagePosition, bool) {
	var pos pagePosition
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return pos, false
	}
	fields := strings.Split(string(raw), "|")
	if len(fields) != 4 {
		return pos, false
	}
	if pos.DetectedAt, err = time.Parse(time.RFC3339Nano, fields[0]); err != nil {
		return pos, false
	}
	if pos.SourceLSN, err = strconv.ParseInt(fields[1], 10, 64); err != nil {
		return pos, false
	}
	seq, err := strconv.ParseInt(fields[2], 10, 32)
	if err != nil {
		return pos, false
	}
	pos.Seq = int32(seq)
	if pos.ID, err = uuid.Parse(fields[3]); err != nil {
		return pos, false
	}
	return pos, true
}

// pathUUID parses the path parameter name as a UUID.
func pathUUID(c echo.Context, name string) (uuid.UUID, error) {
	v := c.Param(name)
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, badParam("%s %q is not a UUID; use the id field of a change event or an undo result",
			name, v)
	}
	return id, nil
}

// loadChange reads the change event id, or returns a 404 Error.
func (s *Server) loadChange(c echo.Context, id uuid.UUID) (dbgen.ChangeEvent, error) {
	ev, err := s.cfg.Store.Queries(s.cfg.Store.Pool).GetChangeEvent(c.Request().Context(), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return ev, notFound("change event %s not found; list change events with GET /change-events/", id)
	}
	return ev, err
}

func (s *Server) getChangeEvent(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	ev, err := s.loadChange(c, id)
	if err != nil {
		return err
	}
	ctx, q := c.Request().Context(), s.cfg.Store.Queries(s.cfg.Store.Pool)
	logs, err := q.ListSyncLogByChange(ctx, id)
	if err != nil {
		return err
	}
	undos, err := q.ListUndoRequestsByChange(ctx, id)
	if err != nil {
		return err
	}

	detail := ChangeEventDetail{
		ChangeEvent: changeEventJSON(&ev), SyncLog: make([]SyncLogEntry, 0, len(logs)),
		UndoRequests: make([]UndoEntry, 0, len(undos)),
	}
	for i := range logs {
		detail.SyncLog = append(detail.SyncLog, syncLogJSON(&logs[i]))
	}
	for i := range undos {
		detail.UndoRequests = append(detail.UndoRequests, undoJSON(&undos[i]))
	}
	return c.JSON(http.StatusOK, detail)
}

func (s *Server) getStatus(c echo.Context) error {
	id, err := pathUUID(c, "change_id")
	if err != nil {
		return err
	}
	ev, err := s.loadChange(c, id)
	if err != nil {
		return err
	}
	ctx, q := c.Request().Context(), s.cfg.Store.Queries(s.cfg.Store.Pool)
	logs, err := q.ListSyncLogByChange(ctx, id)
	if err != nil {
		return err
	}
	undos, err := q.ListUndoRequestsByChange(ctx, id)
	if err != nil {
		return err
	}

	st := Status{
		ChangeID: ev.ID, Status: string(ev.Status), Validated: ev.Validated, Synced: ev.Synced,
		UndoStatus: "none", DetectedAt: ev.DetectedAt, DecidedBy: textPtr(ev.DecidedBy),
		ReleaseRunning: s.releaseRunning(ev.ID, ev.ThreadID),
	}
	for i := range logs {
		if !logs[i].UndoRequest.Valid && st.SyncedAt == nil {
			st.SyncedAt = &logs[i].SyncedAt
		}
	}
	st.TargetWritten = st.SyncedAt != nil
	// The latest undo request decides the undo status; an applied one also gives the time.
	for i := range undos {
		st.UndoStatus = string(undos[i].Status)
		if undos[i].Status == dbgen.UndoStatusApplied {
			st.UndoneAt = timePtr(undos[i].UndoneAt)
		}
	}
	if st.UndoneAt != nil {
		st.UndoStatus = string(dbgen.UndoStatusApplied)
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) getUndoRequest(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	rows, err := s.cfg.Store.Queries(s.cfg.Store.Pool).ListUndoRequestsByRequest(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return notFound("undo request %s not found; use the request_id that POST /undo-request/ returned "+
			"(a dry run is not recorded)", id)
	}

	detail := UndoRequestDetail{
		RequestID: id, Requestor: rows[0].Requestor, Reason: rows[0].Reason,
		Status: string(rows[0].Status), Changes: make([]UndoEntry, 0, len(rows)),
	}
	for i := range rows {
		detail.Changes = append(detail.Changes, undoJSON(&rows[i]))
	}
	return c.JSON(http.StatusOK, detail)
}

func changeEventJSON(ev *dbgen.ChangeEvent) ChangeEvent {
	return ChangeEvent{
		ID: ev.ID, Pipeline: ev.Pipeline, ThreadID: ev.ThreadID, Seq: ev.Seq, TableName: ev.TableName,
		TargetTable: textPtr(ev.TargetTable), RowKey: ev.RowKey, ChangeType: string(ev.ChangeType),
		Status: string(ev.Status), Validated: ev.Validated, Synced: ev.Synced,
		OldData: jsonOrNull(ev.OldData), NewData: jsonOrNull(ev.NewData), DetectedAt: ev.DetectedAt,
		DecisionReason: textPtr(ev.DecisionReason), DecidedBy: textPtr(ev.DecidedBy), Actor: textPtr(ev.Actor),
		SourceLSN: ev.SourceLSN, XID: ev.Xid, CommitTime: ev.CommitTime, UndoToken: ev.UndoToken,
		Error: textPtr(ev.Error),
	}
}

func syncLogJSON(l *dbgen.SyncLog) SyncLogEntry {
	e := SyncLogEntry{
		ID: l.ID, SourceTable: l.SourceTable, TargetTable: l.TargetTable, RowKey: l.SourceID,
		TargetKey: jsonOrNull(l.TargetKey), Diff: jsonOrNull(l.Diff), SyncedAt: l.SyncedAt,
		PerformedBy: l.PerformedBy, UndoStatus: l.UndoStatus, Op: string(l.Op),
	}
	if l.UndoRequest.Valid {
		e.UndoRequest = &l.UndoRequest.UUID
	}
	return e
}

func undoJSON(u *dbgen.UndoRequest) UndoEntry {
	return UndoEntry{
		ID: u.ID, RequestID: u.RequestID, ChangeID: u.ChangeEvent, Requestor: u.Requestor, Reason: u.Reason,
		Status: string(u.Status), Forced: u.Forced, CreatedAt: timePtr(u.CreatedAt),
		UndoneAt: timePtr(u.UndoneAt), Conflicts: jsonOrNull(u.Conflicts), Error: textPtr(u.Error),
	}
}

func textPtr(t pgtype.Text) *string {
	if !t.Valid {
		return nil
	}
	return &t.String
}

func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}

func jsonOrNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
