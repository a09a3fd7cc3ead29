package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The handlers check their input too, so these tests tell the validator's rejections apart
// by the wording only it uses: the parameter's location, and kin-openapi's schema reasons.
func TestValidatorRejectsRequests(t *testing.T) {
	e := newEnv(t)
	id := uuid.NewString()
	tests := []struct {
		name         string
		method       string
		path         string
		body         string
		wantCode     string
		wantMessages []string
	}{
		{
			name: "query parameter type", method: http.MethodGet, path: "/change-events/?limit=abc",
			wantCode:     "invalid_parameter",
			wantMessages: []string{`query parameter limit "abc" is invalid`, "whole number from 1 to 500"},
		},
		{
			name: "query parameter maximum", method: http.MethodGet, path: "/change-events?limit=501",
			wantCode:     "invalid_parameter",
			wantMessages: []string{`query parameter limit "501"`, "whole number from 1 to 500"},
		},
		{
			name: "query parameter enum", method: http.MethodGet, path: "/change-events/?status=done",
			wantCode:     "invalid_parameter",
			wantMessages: []string{`query parameter status "done"`, "use detected, approved"},
		},
		{
			name: "path parameter format", method: http.MethodGet, path: "/status/42",
			wantCode:     "invalid_parameter",
			wantMessages: []string{`path parameter change_id "42"`, "UUID"},
		},
		{
			name: "required field missing", method: http.MethodPost, path: "/sync-manual/",
			body:         `{"change_id": "` + id + `", "action": "approve"}`,
			wantCode:     "invalid_body",
			wantMessages: []string{`"reason"`, "missing", "add it"},
		},
		{
			name: "unknown field", method: http.MethodPost, path: "/undo-request/",
			body:         `{"change_id": "` + id + `", "reason": "r", "requestor": "mallory"}`,
			wantCode:     "invalid_body",
			wantMessages: []string{`"requestor"`, "unsupported", "remove it"},
		},
		{
			name: "field enum", method: http.MethodPost, path: "/sync-manual",
			body:         `{"change_id": "` + id + `", "action": "apply", "reason": "r"}`,
			wantCode:     "invalid_body",
			wantMessages: []string{`field "action" "apply" is invalid`, "approve or reject"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			got := e.do(tt.method, tt.path, "", body).wantError(t, http.StatusBadRequest, tt.wantCode)
			for _, want := range tt.wantMessages {
				if !strings.Contains(got.Message, want) {
					t.Errorf("message %q does not mention %q", got.Message, want)
				}
			}
		})
	}
}

func TestValidatorRunsAfterAuth(t *testing.T) {
	e := newEnv(t, withAuth)
	e.get("/change-events/?limit=abc", "").wantError(t, http.StatusUnauthorized, "unauthorized")

	viewer := token(t, "alice", "viewer", time.Minute)
	e.get("/change-events/?limit=abc", viewer).wantError(t, http.StatusBadRequest, "invalid_parameter")
	e.do(http.MethodPost, "/sync-manual/", viewer, `{"action": "approve", "reason": "r", "x": 1}`).
		wantError(t, http.StatusForbidden, "forbidden")
}
