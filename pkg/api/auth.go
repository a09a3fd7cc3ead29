package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/datasense/changesync/pkg/config"
)

// role is a permission level. Each role may do everything the roles below it may do.
type role int

const (
	roleNone     role = iota // public endpoint, no token needed
	roleViewer               // reads the audit trail
	roleOperator             // also approves and rejects held changes
	roleAdmin                // also undoes changes, with force
)

var roleNames = map[string]role{"viewer": roleViewer, "operator": roleOperator, "admin": roleAdmin}

func (r role) String() string {
	for name, v := range roleNames {
		if v == r {
			return name
		}
	}
	return "none"
}

// defaultRoleClaim is the claim that contains the role when api.auth.role_claim is empty.
const defaultRoleClaim = "role"

// anonymous is the requestor recorded when authentication is not configured. The server
// then listens on loopback only and treats every request as an admin's.
const anonymous = "anonymous"

// principalKey is the echo.Context key of the authenticated principal.
const principalKey = "changesync.principal"

// principal is who made a request: the token's subject and the highest role it has.
type principal struct {
	Subject string
	Role    role
}

// authenticator checks bearer tokens: HS256 with a secret from the environment, or the
// algorithms of the keys at a JWKS URL.
type authenticator struct {
	secret    []byte
	jwks      keyfunc.Keyfunc
	stopJWKS  context.CancelFunc
	parser    *jwt.Parser
	roleClaim string
}

// newAuthenticator returns nil when authentication is not configured.
func newAuthenticator(cfg config.APIAuth) (*authenticator, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	a := &authenticator{roleClaim: cfg.RoleClaim, stopJWKS: func() {}}
	if a.roleClaim == "" {
		a.roleClaim = defaultRoleClaim
	}

	var methods []string
	if cfg.JWTSecretEnv != "" {
		secret := os.Getenv(cfg.JWTSecretEnv)
		if secret == "" {
			return nil, fmt.Errorf("api: api.auth.jwt_secret_env names %s, which is empty or unset: "+
				"export the HS256 secret in %s", cfg.JWTSecretEnv, cfg.JWTSecretEnv)
		}
		a.secret = []byte(secret)
		methods = append(methods, "HS256")
	}
	if cfg.JWKSURL != "" {
		ctx, cancel := context.WithCancel(context.Background())
		jwks, err := keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("api: load the keys of api.auth.jwks_url %q: %w", cfg.JWKSURL, err)
		}
		a.jwks, a.stopJWKS = jwks, cancel
		methods = append(methods, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
			"ES256", "ES384", "ES512", "EdDSA")
	}

	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

func (a *authenticator) close() { a.stopJWKS() }

// key returns the key that verifies token: the secret for HS256, otherwise the JWKS key
// named by the token's kid.
func (a *authenticator) key(token *jwt.Token) (any, error) {
	if token.Method.Alg() == "HS256" {
		return a.secret, nil
	}
	if a.jwks == nil {
		return nil, fmt.Errorf("algorithm %s needs api.auth.jwks_url", token.Method.Alg())
	}
	return a.jwks.Keyfunc(token)
}

// authenticate verifies the bearer token of r and returns its subject and role.
func (a *authenticator) authenticate(r *http.Request) (principal, *Error) {
	header := r.Header.Get(echo.HeaderAuthorization)
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if header == "" || !ok || strings.TrimSpace(raw) == "" {
		return principal{}, newError(http.StatusUnauthorized, "unauthorized",
			"the Authorization header is missing or not a bearer token; send Authorization: Bearer <JWT>")
	}

	claims := jwt.MapClaims{}
	if _, err := a.parser.ParseWithClaims(strings.TrimSpace(raw), claims, a.key); err != nil {
		return principal{}, newError(http.StatusUnauthorized, "invalid_token", tokenProblem(err))
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return principal{}, newError(http.StatusUnauthorized, "invalid_token",
			"the token has no subject (sub claim); issue a token whose sub names the user")
	}
	rl, ok := a.role(claims)
	if !ok {
		return principal{}, newError(http.StatusForbidden, "forbidden", fmt.Sprintf(
			"the token's %q claim names no known role; give the user viewer, operator or admin", a.roleClaim))
	}
	return principal{Subject: sub, Role: rl}, nil
}

// tokenProblem describes why a token was rejected, without echoing the token.
func tokenProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired; get a new token"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token lacks a required claim (exp, or the configured iss or aud); issue a token with it"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer (iss) is not the configured issuer; get a token from that issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience (aud) does not include the configured audience; get a token for this API"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet (nbf or iat in the future); check the clocks and try later"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is not a well-formed JWT; send the compact form header.payload.signature"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's signature or algorithm is invalid; use a token signed by the configured key " +
			"(HS256 secret or a JWKS key)"
	default:
		return "the token is invalid; get a new token"
	}
}

// role returns the highest known role of the role claim, which is a string or an array
// of strings.
func (a *authenticator) role(claims jwt.MapClaims) (role, bool) {
	var names []string
	switch v := claims[a.roleClaim].(type) {
	case string:
		names = []string{v}
	case []any:
		for _, item := range v {
			if s, ok := item.(string); ok {
				names = append(names, s)
			}
		}
	}
	best := roleNone
	for _, name := range names {
		if r, ok := roleNames[name]; ok && r > best {
			best = r
		}
	}
	return best, best != roleNone
}

// authorize wraps h so that it runs only for a principal with at least role min.
func (s *Server) authorize(minRole role, h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := principal{Subject: anonymous, Role: roleAdmin}
		if s.auth != nil {
			var apiErr *Error
			if p, apiErr = s.auth.authenticate(c.Request()); apiErr != nil {
				if apiErr.Status == http.StatusUnauthorized {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="changesync"`)
				}
				return apiErr
			}
		}
		if p.Role < minRole {
			return newError(http.StatusForbidden, "forbidden", fmt.Sprintf(
				"%s %s needs the %s role and the token of %q has %s; ask an admin for the %s role",
				c.Request().Method, c.Path(), minRole, p.Subject, p.Role, minRole))
		}
		c.Set(principalKey, p)
		return h(c)
	}
}

// requestor returns the subject of the request's token: the name recorded for an action.
func requestor(c echo.Context) string {
	if p, ok := c.Get(principalKey).(principal); ok {
		return p.Subject
	}
	return anonymous
}
