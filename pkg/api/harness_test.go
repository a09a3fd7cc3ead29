package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
	"github.com/datasense/changesync/pkg/undo"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	pipelineName = "test"
	secretEnv    = "CHANGESYNC_API_TEST_SECRET"
	secret       = "test-secret-of-at-least-32-bytes!!"
	customers    = "public.customers"
)

// env is a target database with the metadata schema, a customers table mapped onto
// itself, and an API server in front of it.
type env struct {
	t      *testing.T
	st     *store.Store
	srv    *api.Server
	srvCfg api.Config // the Config of srv, to build another server on the same database
	http   *httptest.Server
	target *pgx.Conn
	lsn    int64
	log    *lockedBuffer // the server log
}

type envOption func(*config.Config)

// withAuth configures HS256 authentication with the test secret.
func withAuth(c *config.Config) { c.API.Auth.JWTSecretEnv = secretEnv }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvWith(t, nil, opts...)
}

// newEnvWith is newEnv with setServer, when not nil, changing the server's Config.
func newEnvWith(t *testing.T, setServer func(*api.Config), opts ...envOption) *env {
	t.Helper()
	t.Setenv(secretEnv, secret)
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `CREATE TABLE public.customers (id int PRIMARY KEY, name text, zip text)`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, url, store.DefaultSchema); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, store.DefaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	table := change.TableName{Schema: "public", Name: "customers"}
	specs := []apply.TableSpec{{Source: table, Target: table}}
	applier, err := apply.New(ctx, st.Pool, specs, apply.Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := undo.New(undo.Config{Store: st, Tables: specs})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{API: config.API{Listen: "127.0.0.1:0"}}
	for _, opt := range opts {
		opt(cfg)
	}
	logBuf := &lockedBuffer{}
	srvCfg := api.Config{
		Cfg: cfg, Store: st, Applier: applier, Undo: ex, Pipeline: pipelineName,
		Log: slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logBuf), nil)),
	}
	if setServer != nil {
		setServer(&srvCfg)
	}
	srv, err := api.New(srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &env{t: t, st: st, srv: srv, srvCfg: srvCfg, http: hs, target: conn, lsn: 1000, log: logBuf}
}

// event is a change event to insert; zero fields get defaults.
type event struct {
	id, thread uuid.UUID
	rowKey     string
	table      string
	op         dbgen.ChangeType
	status     dbgen.ChangeStatus
	oldData    map[string]any
	newData    map[string]any
	actor      string
	detectedAt time.Time
	// lsn is the commit LSN of the source transaction, and seq the position in it, which
	// is used only with lsn. Without lsn, each event gets the next LSN and its index in
	// the insert call as seq.
	lsn int64
	seq int32
}

// insert writes change events into change_events and returns their ids.
func (e *env) insert(events ...event) []uuid.UUID {
	e.t.Helper()
	rows := make([]dbgen.InsertChangeEventsParams, len(events))
	ids := make([]uuid.UUID, len(events))
	for i, ev := range events {
		e.lsn++
		lsn, seq := e.lsn, int32(i)
		if ev.lsn != 0 {
			lsn, seq = ev.lsn, ev.seq
		}
		if ev.id == uuid.Nil {
			ev.id = uuid.New()
		}
		if ev.thread == uuid.Nil {
			ev.thread = uuid.New()
		}
		if ev.table == "" {
			ev.table = customers
		}
		if ev.op == "" {
			ev.op = dbgen.ChangeTypeInsert
		}
		if ev.status == "" {
			ev.status = dbgen.ChangeStatusSynced
		}
		if ev.detectedAt.IsZero() {
			ev.detectedAt = time.Now().UTC()
		}
		rows[i] = dbgen.InsertChangeEventsParams{
			ID: ev.id, Pipeline: pipelineName, ThreadID: ev.thread, Seq: seq, RowKey: ev.rowKey,
			TableName: ev.table, ChangeType: ev.op, OldData: mustJSON(e.t, ev.oldData),
			NewData: mustJSON(e.t, ev.newData), DetectedAt: ev.detectedAt, Status: ev.status,
			Actor: pgtype.Text{String: ev.actor, Valid: ev.actor != ""}, SourceLSN: lsn, Xid: lsn,
			CommitTime: ev.detectedAt,
		}
		ids[i] = ev.id
	}
	if _, err := e.st.Queries(e.st.Pool).InsertChangeEvents(context.Background(), rows); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func mustJSON(t *testing.T, v map[string]any) json.RawMessage {
	t.Helper()
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// token signs an HS256 token with the test secret for subject and role, expiring in ttl.
func token(t *testing.T, subject, role string, ttl time.Duration) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": subject, "role": role, "exp": time.Now().Add(ttl).Unix()}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// response is a decoded API response.
type response struct {
	status int
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorBody decodes an error response and checks its status and code.
func (r response) wantError(t *testing.T, status int, code string) api.Error {
	t.Helper()
	var e api.Error
	r.decode(t, &e)
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if e.Code != code {
		t.Errorf("code = %q, want %q (body %s)", e.Code, code, r.body)
	}
	if e.Message == "" {
		t.Errorf("error message is empty: %s", r.body)
	}
	return e
}

// do sends a request with an optional bearer token and JSON body.
func (e *env) do(method, path, bearer string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		rd = bytes.NewReader(mustJSONAny(e.t, b))
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); path != "/metrics" && !bytes.HasPrefix([]byte(ct), []byte("application/json")) {
		e.t.Errorf("%s %s: Content-Type = %q, want JSON", method, path, ct)
	}
	return response{status: res.StatusCode, body: raw}
}

func (e *env) get(path, bearer string) response { return e.do(http.MethodGet, path, bearer, nil) }

func mustJSONAny(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// targetRow returns the customers row with id as name and zip, or ok false.
func (e *env) targetRow(id int) (name, zip string, ok bool) {
	e.t.Helper()
	err := e.target.QueryRow(context.Background(),
		`SELECT coalesce(name, ''), coalesce(zip, '') FROM public.customers WHERE id = $1`, id).Scan(&name, &zip)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return name, zip, true
}

func must(t *testing.T, r response, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// testWriter sends the server log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// lockedBuffer is a bytes.Buffer that the server's goroutines may write concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
