package api

import (
	"errors"
	"fmt"
	"net/http"

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
	case http.StatusServiceUnavailable:
		return newError(e.Code, "timeout", "the request timed out after "+handlerTimeout.String()+
			"; narrow the request, such as a shorter time window, and try again")
	case http.StatusUnauthorized:
		return newError(e.Code, "unauthorized", fmt.Sprint(e.Message))
	default:
		return newError(e.Code, "http_error", http.StatusText(e.Code))
	}
}
