package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

func TestAuthRejectsBadTokens(t *testing.T) {
	e := newEnv(t, withAuth)
	otherKey, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "eve", "role": "admin", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte("another-secret-of-at-least-32-bytes"))
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": "eve", "role": "admin", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es256, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": "eve", "role": "admin", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	noExp, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "eve", "role": "admin"}).
		SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	noSub, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"role": "admin", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		bearer  string
		status  int
		code    string
		message string // a part of the message
	}{
		{"missing", "", http.StatusUnauthorized, "unauthorized", "Authorization"},
		{"malformed", "abc", http.StatusUnauthorized, "invalid_token", "well-formed"},
		{"expired", token(t, "ann", "viewer", -time.Minute), http.StatusUnauthorized, "invalid_token", "expired"},
		{"bad signature", otherKey, http.StatusUnauthorized, "invalid_token", "signature"},
		{"none algorithm", none, http.StatusUnauthorized, "invalid_token", "signature"},
		{"algorithm not configured", es256, http.StatusUnauthorized, "invalid_token", "signature"},
		{"no expiry", noExp, http.StatusUnauthorized, "invalid_token", "exp"},
		{"no subject", noSub, http.StatusUnauthorized, "invalid_token", "sub"},
		{"unknown role", token(t, "ann", "owner", time.Hour), http.StatusForbidden, "forbidden", "role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.get("/change-events/", tt.bearer).wantError(t, tt.status, tt.code)
			if !strings.Contains(got.Message, tt.message) {
				t.Errorf("message %q does not mention %q", got.Message, tt.message)
			}
		})
	}
}

func TestAuthRoles(t *testing.T) {
	e := newEnv(t, withAuth)
	viewer := token(t, "vic", "viewer", time.Hour)
	operator := token(t, "olga", "operator", time.Hour)
	admin := token(t, "ada", "admin", time.Hour)
	unknown := map[string]any{"change_id": uuid.New(), "action": "approve", "reason": "r"}
	undoBody := map[string]any{"change_id": uuid.New(), "reason": "r"}

	tests := []struct {
		name   string
		method string
		path   string
		bearer string
		body   any
		status int
	}{
		{"viewer reads", http.MethodGet, "/change-events/", viewer, nil, http.StatusOK},
		{"viewer may not sync", http.MethodPost, "/sync-manual/", viewer, unknown, http.StatusForbidden},
		{"operator syncs", http.MethodPost, "/sync-manual/", operator, unknown, http.StatusNotFound},
		{"operator may not undo", http.MethodPost, "/undo-request/", operator, undoBody, http.StatusForbidden},
		{"viewer may not undo", http.MethodPost, "/undo-request/", viewer, undoBody, http.StatusForbidden},
		{"admin undoes", http.MethodPost, "/undo-request/", admin, undoBody, http.StatusNotFound},
		{"admin syncs", http.MethodPost, "/sync-manual", admin, unknown, http.StatusNotFound},
		{"health needs no token", http.MethodGet, "/healthz", "", nil, http.StatusOK},
		{"openapi needs no token", http.MethodGet, "/openapi.json", "", nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do(tt.method, tt.path, tt.bearer, tt.body)
			if got.status != tt.status {
				t.Errorf("status = %d, want %d: %s", got.status, tt.status, got.body)
			}
		})
	}
}

func TestAuthRoleClaimArray(t *testing.T) {
	e := newEnv(t, withAuth, func(c *config.Config) { c.API.Auth.RoleClaim = "groups" })
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ann", "groups": []string{"staff", "operator"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	got := e.do(http.MethodPost, "/sync-manual/", tok, map[string]any{
		"change_id": uuid.New(), "action": "reject", "reason": "r",
	})
	if got.status != http.StatusNotFound {
		t.Errorf("status = %d, want 404 past the role check: %s", got.status, got.body)
	}
}

func TestAuthIssuerAndAudience(t *testing.T) {
	e := newEnv(t, withAuth, func(c *config.Config) {
		c.API.Auth.Issuer, c.API.Auth.Audience = "https://idp.example", "changesync"
	})
	sign := func(iss, aud string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "ann", "role": "viewer", "iss": iss, "aud": aud, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	must(t, e.get("/change-events/", sign("https://idp.example", "changesync")), http.StatusOK)
	e.get("/change-events/", sign("https://other", "changesync")).wantError(t, http.StatusUnauthorized, "invalid_token")
	e.get("/change-events/", sign("https://idp.example", "other")).wantError(t, http.StatusUnauthorized, "invalid_token")
}

func TestRequestorIsTokenSubject(t *testing.T) {
	e := newEnv(t, withAuth)
	id := e.insert(event{rowKey: "1", status: dbgen.ChangeStatusHeld, newData: map[string]any{"id": "1", "name": "A"}})[0]
	operator := token(t, "olga", "operator", time.Hour)
	// A body field naming someone else is rejected, not recorded.
	e.do(http.MethodPost, "/sync-manual/", operator, map[string]any{
		"change_id": id, "action": "approve", "reason": "ok", "decided_by": "mallory",
	}).wantError(t, http.StatusBadRequest, "invalid_body")

	var res api.SyncManualResult
	must(t, e.do(http.MethodPost, "/sync-manual/", operator, map[string]any{
		"change_id": id, "action": "approve", "reason": "ok",
	}), http.StatusOK).decode(t, &res)
	if res.DecidedBy != "olga" {
		t.Errorf("decided_by = %q, want olga", res.DecidedBy)
	}
	ev, err := e.st.Queries(e.st.Pool).GetChangeEvent(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.DecidedBy.String != "olga" {
		t.Errorf("stored decided_by = %q, want olga", ev.DecidedBy.String)
	}

	admin := token(t, "ada", "admin", time.Hour)
	var undone api.UndoResult
	must(t, e.do(http.MethodPost, "/undo-request/", admin, map[string]any{
		"change_id": id, "reason": "wrong customer",
	}), http.StatusOK).decode(t, &undone)
	var detail api.UndoRequestDetail
	must(t, e.get("/undo-requests/"+undone.RequestID.String(), admin), http.StatusOK).decode(t, &detail)
	if detail.Requestor != "ada" {
		t.Errorf("undo requestor = %q, want ada", detail.Requestor)
	}
}
