package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Error is the JSON body of every error response. Code is stable for programs, and
// Message names the bad value and how to fix it.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

func badParam(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf(format, args...))
}

func badBody(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "invalid_body", fmt.Sprintf(format, args...))
}

func notFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, "not_found", fmt.Sprintf(format, args...))
}

// handleError writes err as a JSON Error. An error that is neither an *Error nor an
// *echo.HTTPError is logged, and the client gets a 500 without its text, so no SQL or
// internal detail reaches the client.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}

	var apiErr *Error
	var httpErr *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
	case errors.As(err, &httpErr):
		apiErr = fromHTTPError(httpErr)
	default:
		s.log.Error("api request failed", "method", c.Request().Method, "path", c.Path(),
			"error", err.Error())
		apiErr = newError(http.StatusInternalServerError, "internal",
			"the server failed to handle the request; the error is in its log")
	}

	if err := c.JSON(apiErr.Status, apiErr); err != nil {
		s.log.Warn("api error response not sent", "error", err.Error())
	}
}

// handleTimeout is the error handler of the timeout middleware. It logs each request that
// timed out with its route and ids, and returns a 503 whose advice fits the route.
func (s *Server) handleTimeout(err error, c echo.Context) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.log.Warn("api request timed out", append(logAttrs(c), "timeout", s.handlerTimeout.String(),
		"error", err.Error())...)
	return newError(http.StatusServiceUnavailable, "timeout",
		"the request timed out after "+s.handlerTimeout.String()+" and was canceled; "+timeoutAdvice(c.Path()))
}

// timeoutAdvice returns what to do after a timeout of the route.
func timeoutAdvice(route string) string {
	switch strings.TrimSuffix(route, "/") {
	case "/change-events":
		return "narrow the listing with filters such as table, status, since and until, or a smaller limit"
	case "/undo-request":
		return "the undo was rolled back, so nothing was undone. Run changesync undo with the same scope, " +
			"which has no time limit"
	case "/sync-manual":
		return "nothing was decided; try again, and if the check of the change or thread keeps timing out, " +
			"run changesync release, which has no time limit"
	default:
		return "it changed nothing; try again, and if it keeps timing out check the load of the target database"
	}
}

// fromHTTPError turns the errors of the router and of the middleware into an Error.
func fromHTTPError(e *echo.HTTPError) *Error {
	switch e.Code {
	case http.StatusNotFound:
		return newError(e.Code, "route_not_found",
			"no such endpoint; GET /openapi.json lists the endpoints of this API")
	case http.StatusMethodNotAllowed:
		return newError(e.Code, "method_not_allowed",
			"the endpoint does not take this method; GET /openapi.json lists the methods of each endpoint")
	case http.StatusRequestEntityTooLarge:
		return newError(e.Code, "body_too_large", "the request body is larger than "+bodyLimit+"B; send less")
	case http.StatusUnauthorized:
		return newError(e.Code, "unauthorized", fmt.Sprint(e.Message))
	default:
		return newError(e.Code, "http_error", http.StatusText(e.Code))
	}
}
