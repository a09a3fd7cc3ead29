package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/undo"
)

// SyncManualRequest is the body of POST /sync-manual/. Exactly one of ChangeID and
// ThreadID is set; a thread decides every held change of one source transaction.
type SyncManualRequest struct {
	ChangeID *uuid.UUID `json:"change_id"`
	ThreadID *uuid.UUID `json:"thread_id"`
	Action   string     `json:"action"` // approve or reject
	Reason   string     `json:"reason"`
}

// SyncManualResult is the response of POST /sync-manual/.
type SyncManualResult struct {
	Action    string      `json:"action"`
	DecidedBy string      `json:"decided_by"`
	Released  []uuid.UUID `json:"released"` // the held changes decided
	Applied   []uuid.UUID `json:"applied"`  // blocked changes applied after them
	Failed    []uuid.UUID `json:"failed"`   // changes the target rejected
	Blocked   int         `json:"blocked"`  // changes still blocked behind other held changes
}

// UndoRequest is the body of POST /undo-request/. It names one scope: change_id,
// undo_token, thread_id, table with row_key, or a time window of since, until and tables.
type UndoRequest struct {
	ChangeID  *uuid.UUID `json:"change_id"`
	UndoToken *uuid.UUID `json:"undo_token"`
	ThreadID  *uuid.UUID `json:"thread_id"`
	Table     string     `json:"table"`
	RowKey    string     `json:"row_key"`
	Since     *time.Time `json:"since"`
	Until     *time.Time `json:"until"`
	Tables    []string   `json:"tables"`
	Reason    string     `json:"reason"`
	DryRun    bool       `json:"dry_run"`
	Force     bool       `json:"force"`
}

// UndoResult is the response of POST /undo-request/. Code and Message are set when the
// request was refused, such as for conflicts.
type UndoResult struct {
	undo.Result
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func (s *Server) syncManual(c echo.Context) error {
	var body SyncManualRequest
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	req, err := s.releaseRequest(c, &body)
	if err != nil {
		return err
	}
	if s.cfg.Applier == nil {
		return newError(http.StatusServiceUnavailable, "unavailable",
			"manual sync is not available because this server runs without an applier")
	}

	opts := []pipeline.ReleaseOption{
		pipeline.WithReleaseNotifications(s.cfg.Notify),
		pipeline.WithReleaseMaxValueBytes(s.cfg.Cfg.Audit.MaxValueBytes),
	}
	run, err := s.startRelease(body.Action, req, opts...)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var out releaseOutcome
	select {
	case out = <-run.done:
	case <-ctx.Done():
		close(run.detached)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return s.acceptRelease(c, &body, req)
		}
		s.log.Warn("client disconnected; the release continues in the background",
			append(logAttrs(c), "action", body.Action, "requestor", req.By)...)
		return nil
	}

	res, err := out.res, out.err
	if errors.Is(err, pipeline.ErrNotHeld) {
		return newError(http.StatusConflict, "not_held",
			err.Error()+"; only held changes can be approved or rejected, see GET /status/{change_id}")
	}
	if s.canceledByShutdown(err) {
		s.logShutdownCancel(append(logAttrs(c), "action", body.Action, "requestor", req.By), err)
		return errShuttingDown("the server is shutting down, so the release was canceled and rolled back")
	}
	if err != nil {
		return err
	}
	s.log.Info("held changes decided", "action", body.Action, "requestor", req.By,
		"released", len(res.Released), "applied", len(res.Applied), "failed", len(res.Failed))
	return c.JSON(http.StatusOK, SyncManualResult{
		Action: body.Action, DecidedBy: req.By, Released: nonNil(res.Released), Applied: nonNil(res.Applied),
		Failed: nonNil(res.Failed), Blocked: res.Blocked,
	})
}

// releaseRequest checks the body of POST /sync-manual/ and that the change or thread it
// names exists.
func (s *Server) releaseRequest(c echo.Context, body *SyncManualRequest) (pipeline.ReleaseRequest, error) {
	req := pipeline.ReleaseRequest{By: requestor(c), Reason: strings.TrimSpace(body.Reason)}
	if (body.ChangeID == nil) == (body.ThreadID == nil) {
		return req, badBody("name exactly one of change_id and thread_id")
	}
	switch body.Action {
	case "approve":
		req.Approve = true
	case "reject":
	default:
		return req, badBody("action %q is invalid; use approve or reject", body.Action)
	}
	if req.Reason == "" {
		return req, badBody("reason is missing; say why the change is approved or rejected")
	}

	if body.ChangeID != nil {
		req.ChangeID = *body.ChangeID
		setLogIDs(c, "change_id", req.ChangeID.String())
		_, err := s.loadChange(c, req.ChangeID)
		return req, err
	}
	req.ThreadID = *body.ThreadID
	setLogIDs(c, "thread_id", req.ThreadID.String())
	events, err := s.cfg.Store.Queries(s.cfg.Store.Pool).ListChangeEventsByThread(c.Request().Context(), req.ThreadID)
	if err != nil {
		return req, err
	}
	if len(events) == 0 {
		return req, notFound("thread %s not found; use the thread_id of a change event", req.ThreadID)
	}
	return req, nil
}

func (s *Server) undoRequest(c echo.Context) error {
	var body UndoRequest
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if s.cfg.Undo == nil {
		return newError(http.StatusServiceUnavailable, "unavailable",
			"undo is not available because this server runs without an undo executor")
	}

	req := undo.Request{
		Table: body.Table, RowKey: body.RowKey, Tables: body.Tables, Reason: body.Reason,
		DryRun: body.DryRun, Force: body.Force, Requestor: requestor(c),
	}
	if body.ChangeID != nil {
		req.ChangeID = *body.ChangeID
	}
	if body.UndoToken != nil {
		req.UndoToken = *body.UndoToken
	}
	if body.ThreadID != nil {
		req.ThreadID = *body.ThreadID
	}
	if body.Since != nil {
		req.Since = *body.Since
	}
	if body.Until != nil {
		req.Until = *body.Until
	}

	setLogIDs(c, undoLogIDs(&body)...)
	if name := nilScopeID(&body); name != "" && req.Scopeless() {
		return notFound("%s %s not found; use the id of a change event or an undo result", name, uuid.Nil)
	}

	res, err := s.cfg.Undo.Execute(c.Request().Context(), req)
	if err != nil {
		return undoError(c, res, err)
	}
	return c.JSON(http.StatusOK, UndoResult{Result: res})
}

// undoLogIDs returns the log attributes of the scope an undo request names.
func undoLogIDs(body *UndoRequest) []any {
	var ids []any
	if body.ChangeID != nil {
		ids = append(ids, "change_id", body.ChangeID.String())
	}
	if body.UndoToken != nil {
		ids = append(ids, "undo_token", body.UndoToken.String())
	}
	if body.ThreadID != nil {
		ids = append(ids, "thread_id", body.ThreadID.String())
	}
	if body.Table != "" || body.RowKey != "" {
		ids = append(ids, "table", body.Table, "row_key", body.RowKey)
	}
	if body.Since != nil {
		ids = append(ids, "since", body.Since.Format(time.RFC3339))
	}
	if len(body.Tables) > 0 {
		ids = append(ids, "tables", strings.Join(body.Tables, ","))
	}
	return ids
}

// nilScopeID returns the name of an id of the body that is the nil UUID, or "". No
// change, token or thread has that id, but undo.Request reads it as not set, so the
// caller returns 404 for it when the body names no other scope.
func nilScopeID(body *UndoRequest) string {
	switch {
	case body.ChangeID != nil && *body.ChangeID == uuid.Nil:
		return "change event"
	case body.UndoToken != nil && *body.UndoToken == uuid.Nil:
		return "undo token"
	case body.ThreadID != nil && *body.ThreadID == uuid.Nil:
		return "thread"
	}
	return ""
}

// undoError returns the response of a failed undo request. A refusal for conflicts or a target rejection
// still returns the result, so the client sees the conflicts and the planned changes.
func undoError(c echo.Context, res undo.Result, err error) error {
	switch {
	case errors.Is(err, undo.ErrInvalidRequest):
		return badBody("%s", err.Error())
	case errors.Is(err, undo.ErrNotFound):
		return notFound("%s; check the id, token or scope of the request", err.Error())
	case errors.Is(err, undo.ErrAlreadyUndone):
		return newError(http.StatusConflict, "already_undone", err.Error()+"; GET /status/{change_id} shows the undo")
	case errors.Is(err, undo.ErrNotUndoable):
		return newError(http.StatusConflict, "not_undoable", err.Error())
	case undo.IsConflict(err):
		return c.JSON(http.StatusConflict, UndoResult{Result: res, Code: "undo_conflict", Message: fmt.Sprintf(
			"%d target values changed since the sync and nothing was undone; review the conflicts, "+
				"then undo with force (admin) to overwrite them", len(res.Conflicts))})
	case res.Status == undo.StatusFailed:
		return c.JSON(http.StatusConflict, UndoResult{Result: res, Code: "undo_failed", Message: "the target " +
			"database rejected the undo's writes and nothing was undone; the server log has the database error"})
	default:
		return err
	}
}

// decodeBody decodes the JSON body of c into v, rejecting unknown fields and trailing data.
func decodeBody(c echo.Context, v any) error {
	if err := checkJSONContentType(c.Request()); err != nil {
		return err
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badBody("the body has data after its JSON object; send one object")
	}
	return nil
}

// bodyProblem describes a JSON decoding error with the field or offset at fault.
func bodyProblem(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var maxErr *http.MaxBytesError
	var timeErr *time.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return badBody("the body is empty; send a JSON object")
	case errors.As(err, &maxErr):
		return newError(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than "+bodyLimit+"B; send less")
	case errors.As(err, &syntaxErr):
		return badBody("the body is not valid JSON at byte %d: %s; fix the JSON syntax", syntaxErr.Offset, syntaxErr)
	case errors.As(err, &typeErr):
		return badBody("field %q has a JSON %s where %s is expected; fix its value", typeErr.Field, typeErr.Value,
			typeErr.Type)
	case errors.As(err, &timeErr):
		return badBody("time %q is not RFC 3339; use a form such as 2024-05-01T12:00:00Z", timeErr.Value)
	// encoding/json and github.com/google/uuid return these errors untyped, so only their
	// text identifies them.
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badBody("%s; remove it, GET /openapi.json lists the fields", strings.TrimPrefix(err.Error(), "json: "))
	case strings.Contains(err.Error(), "invalid UUID"):
		return badBody("an id is not a UUID (%s); use the form 0190a8e2-7c1d-7b3e-9f00-4a5b6c7d8e9f", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badBody("the body ends inside its JSON object; send the whole object")
	default:
		return badBody("the body is not a valid request: %s", err)
	}
}

func nonNil(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}
