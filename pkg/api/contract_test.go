package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/store/dbgen"
)

// TestResponsesMatchOpenAPI sends requests to every endpoint and checks each response
// against the schema that openapi.json gives for its path and status.
func TestResponsesMatchOpenAPI(t *testing.T) {
	e := newEnv(t)
	raw := must(t, e.get("/openapi.json", ""), http.StatusOK).body
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}

	changeID := e.approve(event{rowKey: "1", newData: map[string]any{"id": "1", "name": "A"}})
	held := e.insert(event{rowKey: "2", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "2"}})[0]
	var undone struct {
		RequestID uuid.UUID `json:"request_id"`
	}
	must(t, e.do(http.MethodPost, "/undo-request/", "", map[string]any{"change_id": changeID, "reason": "r"}),
		http.StatusOK).decode(t, &undone)

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
	}{
		{"list", http.MethodGet, "/change-events/?limit=1", "", http.StatusOK},
		{"list invalid", http.MethodGet, "/change-events/?limit=0", "", http.StatusBadRequest},
		{"event", http.MethodGet, "/change-events/" + changeID.String(), "", http.StatusOK},
		{"event unknown", http.MethodGet, "/change-events/" + uuid.NewString(), "", http.StatusNotFound},
		{"status", http.MethodGet, "/status/" + changeID.String(), "", http.StatusOK},
		{"diff", http.MethodGet, "/diff/1", "", http.StatusOK},
		{"undo request", http.MethodGet, "/undo-requests/" + undone.RequestID.String(), "", http.StatusOK},
		{
			"undo dry run", http.MethodPost, "/undo-request/", `{"thread_id": "` + uuid.NewString() + `", "dry_run": true}`,
			http.StatusNotFound,
		},
		{
			"undo twice", http.MethodPost, "/undo-request/", `{"change_id": "` + changeID.String() + `", "reason": "r"}`,
			http.StatusConflict,
		},
		{
			"sync manual", http.MethodPost, "/sync-manual/",
			`{"change_id": "` + held.String() + `", "action": "reject", "reason": "r"}`, http.StatusOK,
		},
		{
			"sync manual not held", http.MethodPost, "/sync-manual/",
			`{"change_id": "` + held.String() + `", "action": "reject", "reason": "r"}`, http.StatusConflict,
		},
		{"healthz", http.MethodGet, "/healthz", "", http.StatusOK},
		{"readyz", http.MethodGet, "/readyz", "", http.StatusOK},
		{"metrics", http.MethodGet, "/metrics", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, bytes.NewBufferString(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}

			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("find %s %s in openapi.json: %v", tt.method, tt.path, err)
			}
			input := &openapi3filter.RequestValidationInput{
				Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			}
			err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: input, Status: rec.Code, Header: rec.Header(),
				Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
			})
			if err != nil {
				t.Errorf("response does not match openapi.json: %v\nbody: %s", err, rec.Body)
			}
		})
	}
}
