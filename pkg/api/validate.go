package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// pathParam matches a path parameter of an echo route, such as :id.
var pathParam = regexp.MustCompile(`:([a-z_]+)`)

// maxQuotedValue is how many bytes of a rejected value an error message repeats.
const maxQuotedValue = 80

// requestValidator checks requests against the operations of the OpenAPI document.
type requestValidator struct {
	doc     *openapi3.T
	options *openapi3filter.Options
}

// newRequestValidator loads the embedded OpenAPI document.
func newRequestValidator() (*requestValidator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		return nil, fmt.Errorf("api: load openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("api: openapi.json is not a valid OpenAPI 3 document: %w", err)
	}
	options := &openapi3filter.Options{
		// The authorize middleware checks the bearer token before the validator runs.
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults: true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.EnableFormatValidation(),
			openapi3.WithStringFormatValidator("uuid", uuidFormat{}),
		},
	}
	return &requestValidator{doc: doc, options: options}, nil
}

// uuidFormat accepts the UUID forms that the handlers parse with uuid.Parse.
type uuidFormat struct{}

func (uuidFormat) Validate(value string) error {
	_, err := uuid.Parse(value)
	return err
}

// wrap returns a handler that calls next only for a request that matches the operation of
// method and path (in echo's :param form). It returns an error when the document lacks it.
func (v *requestValidator) wrap(method, path string, next echo.HandlerFunc) (echo.HandlerFunc, error) {
	docPath := pathParam.ReplaceAllString(path, "{$1}")
	item := v.doc.Paths.Find(docPath)
	if item == nil {
		docPath += "/"
		item = v.doc.Paths.Find(docPath)
	}
	if item == nil || item.GetOperation(method) == nil {
		return nil, fmt.Errorf("api: openapi.json does not describe %s %s", method, path)
	}
	route := &routers.Route{
		Spec: v.doc, Path: docPath, PathItem: item, Method: method, Operation: item.GetOperation(method),
	}

	return func(c echo.Context) error {
		if err := v.validate(c, route); err != nil {
			return err
		}
		return next(c)
	}, nil
}

// validate checks the request of c against route. A mismatch returns an *Error, except
// that a body which is not JSON passes on to the handler's decoder.
func (v *requestValidator) validate(c echo.Context, route *routers.Route) error {
	req := c.Request()
	if route.Operation.RequestBody != nil {
		if err := checkJSONContentType(req); err != nil {
			return err
		}
		// The handlers decode a body without a Content-Type as JSON, so the validator does too.
		if req.Header.Get(echo.HeaderContentType) == "" {
			req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		}
	}

	params := make(map[string]string, len(c.ParamNames()))
	for i, name := range c.ParamNames() {
		params[name] = c.ParamValues()[i]
	}
	input := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route, Options: v.options,
	}
	err := openapi3filter.ValidateRequest(req.Context(), input)
	if err == nil {
		return nil
	}

	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) {
		return httpErr // the body limit, or the timeout, from the middleware
	}
	var reqErr *openapi3filter.RequestError
	if !errors.As(err, &reqErr) {
		return fmt.Errorf("api: validate %s %s: %w", route.Method, route.Path, err)
	}
	var parseErr *openapi3filter.ParseError
	if reqErr.RequestBody != nil && errors.As(err, &parseErr) {
		// The body is not JSON. The handler's decoder rejects it with the byte offset at
		// fault, and the validator has put the body back for it.
		return nil
	}
	return describeRequestError(req, params, reqErr)
}

// checkJSONContentType rejects a body that is declared as something other than JSON.
func checkJSONContentType(req *http.Request) error {
	ct := req.Header.Get(echo.HeaderContentType)
	if ct == "" || strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return nil
	}
	return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
		fmt.Sprintf("Content-Type %q is not JSON; send Content-Type: application/json", ct))
}

// describeRequestError turns a mismatch between a request and the document into an
// Error that names the parameter or field, its value, and what the document expects.
func describeRequestError(req *http.Request, pathParams map[string]string,
	reqErr *openapi3filter.RequestError,
) *Error {
	var schemaErr *openapi3.SchemaError
	hasSchemaErr := errors.As(reqErr, &schemaErr)

	if p := reqErr.Parameter; p != nil {
		value := req.URL.Query().Get(p.Name)
		if p.In == openapi3.ParameterInPath {
			value = pathParams[p.Name]
		}
		return badParam("%s parameter %s %s is invalid: %s; %s", p.In, p.Name, quote(value),
			reason(reqErr, schemaErr), expect(p.Schema.Value))
	}

	if errors.Is(reqErr, openapi3filter.ErrInvalidRequired) {
		return badBody("the body is empty; send a JSON object")
	}
	if !hasSchemaErr {
		return badBody("the body does not match openapi.json: %s; GET /openapi.json shows the body "+
			"of each endpoint", reqErr.Reason)
	}
	field := strings.Join(schemaErr.JSONPointer(), ".")
	switch schemaErr.SchemaField {
	case "properties", "additionalProperties":
		// kin-openapi reports a property that additionalProperties: false forbids under
		// "properties", with the whole object as the value.
		return badBody("%s; remove it, GET /openapi.json lists the fields", schemaErr.Reason)
	case "required":
		return badBody("%s; add it, GET /openapi.json lists the required fields", schemaErr.Reason)
	}
	subject := fmt.Sprintf("field %q", field)
	if field == "" {
		subject = "the body"
	}
	return badBody("%s %s is invalid: %s; %s", subject, quote(fmt.Sprint(schemaErr.Value)),
		schemaErr.Reason, expect(schemaErr.Schema))
}

// reason returns why a parameter did not match, without the value, which the caller
// quotes itself.
func reason(reqErr *openapi3filter.RequestError, schemaErr *openapi3.SchemaError) string {
	var parseErr *openapi3filter.ParseError
	switch {
	case schemaErr != nil:
		return schemaErr.Reason
	case errors.As(reqErr, &parseErr):
		return parseErr.Reason
	case reqErr.Err != nil:
		return reqErr.Err.Error()
	default:
		return reqErr.Reason
	}
}

// expect describes the values that schema accepts, as the fix of an error message.
func expect(schema *openapi3.Schema) string {
	if schema == nil {
		return "GET /openapi.json describes the expected value"
	}
	if len(schema.Enum) > 0 {
		names := make([]string, len(schema.Enum))
		for i, v := range schema.Enum {
			names[i] = fmt.Sprint(v)
		}
		last := len(names) - 1
		if last == 0 {
			return "use " + names[0]
		}
		return "use " + strings.Join(names[:last], ", ") + " or " + names[last]
	}
	switch {
	case schema.Type.Is(openapi3.TypeInteger) && schema.Min != nil && schema.Max != nil:
		return fmt.Sprintf("use a whole number from %g to %g", *schema.Min, *schema.Max)
	case schema.Type.Is(openapi3.TypeInteger):
		return "use a whole number"
	case schema.Type.Is(openapi3.TypeBoolean):
		return "use true or false"
	case schema.Type.Is(openapi3.TypeArray):
		return "use a JSON array"
	case schema.Format == "uuid":
		return "use a UUID such as 0190a8e2-7c1d-7b3e-9f00-4a5b6c7d8e9f"
	case schema.Format == "date-time":
		return "use an RFC 3339 time such as 2024-05-01T12:00:00Z"
	case schema.Type.Is(openapi3.TypeString) && schema.MinLength > 0:
		return "use a non-empty string"
	case schema.Type.Is(openapi3.TypeString):
		return "use a string"
	default:
		return "GET /openapi.json describes the expected value"
	}
}

// quote quotes value for an error message, shortened to maxQuotedValue bytes.
func quote(value string) string {
	if len(value) > maxQuotedValue {
		value = value[:maxQuotedValue] + "..."
	}
	return fmt.Sprintf("%q", value)
}
