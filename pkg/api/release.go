package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"

	"github.com/datasense/changesync/pkg/pipeline"
)

// defaultReleaseTimeout bounds one release of POST /sync-manual/. A release holds the
// pipeline's lock, so batches wait while it runs. NOTE: the value is an estimate: the
// release of a held transaction of 200,000 changes took about 2 minutes in a trial, and
// the limit leaves room for ten times that.
const defaultReleaseTimeout = 30 * time.Minute

// SyncManualAccepted is the 202 response of POST /sync-manual/ when the release outlasts
// the request's time limit. The release goes on and commits or rolls back as a whole.
type SyncManualAccepted struct {
	Status   string     `json:"status"` // always running
	Action   string     `json:"action"`
	ChangeID *uuid.UUID `json:"change_id,omitempty"`
	ThreadID *uuid.UUID `json:"thread_id,omitempty"`
	Message  string     `json:"message"`
}

// releaseOutcome is the result of a release that runs in its own goroutine.
type releaseOutcome struct {
	res pipeline.ReleaseResult
	err error
}

// releaseRun is a release that runs in its own goroutine. While its request waits, done
// receives the outcome. A request that stops waiting closes detached, and the goroutine
// then logs the outcome itself.
type releaseRun struct {
	done     chan releaseOutcome
	detached chan struct{}
}

// releaseKey names a running release by the change or the thread it decides.
func releaseKey(req pipeline.ReleaseRequest) string {
	if req.ThreadID != uuid.Nil {
		return "thread:" + req.ThreadID.String()
	}
	return "change:" + req.ChangeID.String()
}

// releaseRunning reports whether a release of the change id or of its thread runs now.
func (s *Server) releaseRunning(id, thread uuid.UUID) bool {
	_, byChange := s.releases.Load("change:" + id.String())
	_, byThread := s.releases.Load("thread:" + thread.String())
	return byChange || byThread
}

// startRelease runs the release of req in its own goroutine, detached from the request,
// so a client that disconnects or a request that times out does not roll it back. It
// returns 409 release_running when a release of the same change or thread runs already,
// and 503 shutting_down when the server shuts down.
func (s *Server) startRelease(action string, req pipeline.ReleaseRequest, opts ...pipeline.ReleaseOption,
) (*releaseRun, error) {
	key := releaseKey(req)
	if _, running := s.releases.LoadOrStore(key, struct{}{}); running {
		return nil, newError(http.StatusConflict, "release_running", "a release of this change or thread "+
			"runs already; wait until GET /status/{change_id} shows release_running false")
	}
	run := &releaseRun{done: make(chan releaseOutcome), detached: make(chan struct{})}

	// The lock orders this Add before the Wait of stopBackground: once the background
	// context is canceled, no release starts.
	s.backgroundMu.Lock()
	defer s.backgroundMu.Unlock()
	if s.backgroundCtx.Err() != nil {
		s.releases.Delete(key)
		return nil, errShuttingDown("the server is shutting down, so the release was not started")
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		ctx, cancel := context.WithTimeout(s.backgroundCtx, s.releaseTimeout)
		defer cancel()
		res, err := pipeline.Release(ctx, s.cfg.Store, s.cfg.Applier, s.cfg.Pipeline, req, opts...)
		// The release has committed or rolled back, so it no longer runs, also for a
		// GET /status/ sent right after the response.
		s.releases.Delete(key)
		out := releaseOutcome{res: res, err: err}
		select {
		case run.done <- out:
		case <-run.detached:
			s.logDetached(out, action, req)
		}
	}()
	return run, nil
}

// canceledByShutdown reports whether err ended a release because the server shuts down,
// which cancels the releases that still run.
func (s *Server) canceledByShutdown(err error) bool {
	if err == nil || s.backgroundCtx.Err() == nil {
		return false
	}
	return errors.Is(err, context.Canceled) || pgconn.Timeout(err)
}

// errShuttingDown returns the 503 of a release that the server's shutdown canceled or
// did not start. reason states which of the two happened.
func errShuttingDown(reason string) *Error {
	return newError(http.StatusServiceUnavailable, "shutting_down", reason+
		". Nothing was decided, and the changes are still held. Send the request again once "+
		"changesync runs again")
}

// logDetached logs the outcome of a release whose request returned before it ended.
func (s *Server) logDetached(out releaseOutcome, action string, req pipeline.ReleaseRequest) {
	attrs := []any{"action", action, "requestor", req.By}
	attrs = append(attrs, releaseIDs(req)...)
	switch {
	case out.err == nil:
		s.log.Info("held changes decided in the background", append(attrs,
			"released", len(out.res.Released), "applied", len(out.res.Applied),
			"failed", len(out.res.Failed))...)
	case s.canceledByShutdown(out.err):
		s.logShutdownCancel(attrs, out.err)
	default:
		s.log.Error("release in the background failed and was rolled back; the changes stay held",
			append(attrs, "timeout", s.releaseTimeout.String(), "error", out.err.Error())...)
	}
}

// logShutdownCancel logs a release that the server's shutdown canceled, with the log
// attributes attrs of its request.
func (s *Server) logShutdownCancel(attrs []any, err error) {
	s.log.Warn("release canceled by the API's shutdown and rolled back; the changes stay held, "+
		"send the request again", append(attrs, "error", err.Error())...)
}

// releaseIDs returns the log attributes of the change or thread a release decides.
func releaseIDs(req pipeline.ReleaseRequest) []any {
	if req.ThreadID != uuid.Nil {
		return []any{"thread_id", req.ThreadID.String()}
	}
	return []any{"change_id", req.ChangeID.String()}
}

// acceptRelease returns 202 for a release that goes on after its request ended, and logs
// that it does.
func (s *Server) acceptRelease(c echo.Context, body *SyncManualRequest, req pipeline.ReleaseRequest) error {
	attrs := append(logAttrs(c), "action", body.Action, "requestor", req.By,
		"request_timeout", s.handlerTimeout.String(), "release_timeout", s.releaseTimeout.String())
	s.log.Warn("request timed out; the release continues in the background", attrs...)

	where := "GET /status/{change_id}"
	if body.ThreadID != nil {
		where = "GET /change-events/?thread_id=" + body.ThreadID.String() + "&status=held"
	}
	return c.JSON(http.StatusAccepted, SyncManualAccepted{
		Status: "running", Action: body.Action, ChangeID: body.ChangeID, ThreadID: body.ThreadID,
		Message: "the release takes longer than the request's limit of " + s.handlerTimeout.String() +
			" and continues in the background, up to " + s.releaseTimeout.String() + ". It commits all " +
			"its changes or none. " + where + " shows when it has committed (release_running is false and " +
			"the changes are no longer held); the server log has its outcome",
	})
}

// cancelReleases cancels the releases that run, which roll back, and keeps new ones from
// starting.
func (s *Server) cancelReleases() {
	s.backgroundMu.Lock()
	defer s.backgroundMu.Unlock()
	s.cancelBackground()
}

// stopBackground cancels the releases that run, which roll back, and waits for them to
// end.
func (s *Server) stopBackground() {
	s.cancelReleases()
	s.background.Wait()
}

// logAttrs returns the attributes of c for a log line: the method, the route, the path
// parameters and the ids the handler recorded with setLogIDs.
func logAttrs(c echo.Context) []any {
	attrs := []any{"method", c.Request().Method, "route", c.Path()}
	for i, name := range c.ParamNames() {
		if i < len(c.ParamValues()) {
			attrs = append(attrs, name, c.ParamValues()[i])
		}
	}
	if ids, ok := c.Get(logIDsKey).([]any); ok {
		attrs = append(attrs, ids...)
	}
	return attrs
}

// logIDsKey is the echo.Context key of the ids a handler records for the log.
const logIDsKey = "changesync.log_ids"

// setLogIDs records key-value pairs of the ids a request names, such as the change_id of
// its body, for the log line of a timeout or failure.
func setLogIDs(c echo.Context, kv ...any) {
	ids, _ := c.Get(logIDsKey).([]any)
	c.Set(logIDsKey, append(ids, kv...))
}
