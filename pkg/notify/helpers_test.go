package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/datasense/changesync/pkg/pgtest"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// testSecret is a Standard Webhooks secret: whsec_ and base64 of 32 bytes.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/3SvuPs1LeA="

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStore migrates a fresh database and opens its metadata store.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := testContext(t)
	url := pgtest.NewDB(t)
	if err := store.Migrate(ctx, url, store.DefaultSchema); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, url, store.DefaultSchema)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// reopen opens a second pool on the same database, as a second process would.
func reopen(t *testing.T, st *store.Store) *store.Store {
	t.Helper()
	url := st.Pool.Config().ConnConfig.ConnString()
	other, err := store.Open(testContext(t), url, store.DefaultSchema)
	if err != nil {
		t.Fatalf("open second store: %v", err)
	}
	t.Cleanup(other.Close)
	return other
}

func enqueue(t *testing.T, st *store.Store, events ...Event) []Event {
	t.Helper()
	ctx := testContext(t)
	err := st.InTx(ctx, func(tx pgx.Tx, _ *dbgen.Queries) error {
		for i := range events {
			id, err := Enqueue(ctx, tx, events[i])
			if err != nil {
				return err
			}
			events[i].ID = id
		}
		return nil
	})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return events
}

// baseConfig returns a dispatcher configuration with fast polls and retries.
func baseConfig() Config {
	cfg := Config{
		PollInterval: 20 * time.Millisecond,
		Retry: Retry{
			MaxAttempts: 5, InitialInterval: 20 * time.Millisecond, MaxInterval: 100 * time.Millisecond,
			Multiplier: 2, Jitter: 0.2,
		},
	}
	cfg.fillDefaults()
	return cfg
}

func webhookConfig(name, url string, events ...EventType) Webhook {
	return Webhook{
		Destination: Destination{Name: name, Events: events, Timeout: 2 * time.Second},
		URL:         url, ResolvedURL: Secret(url), Secret: testSecret,
	}
}

// running is a dispatcher started by startDispatcher.
type running struct {
	d    *Dispatcher
	reg  *prometheus.Registry
	logs *syncBuffer
	stop func()
}

// startDispatcher runs a dispatcher until the returned stop is called or the test ends.
func startDispatcher(t *testing.T, st *store.Store, cfg Config) *running {
	t.Helper()
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	d, err := NewDispatcher(st, cfg, reg, WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &running{d: d, reg: reg, logs: logs, stop: stop}
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deliveryRow is one outbox_deliveries row as the tests read it.
type deliveryRow struct {
	Destination string
	Attempts    int
	Delivered   bool
	Failed      bool
	LastError   string
}

func deliveries(t *testing.T, st *store.Store, id string) []deliveryRow {
	t.Helper()
	rows, err := st.Pool.Query(testContext(t), `SELECT destination, attempts, delivered_at IS NOT NULL,
		failed_at IS NOT NULL, coalesce(last_error, '') FROM outbox_deliveries WHERE outbox_id = $1
		ORDER BY destination`, id)
	if err != nil {
		t.Fatalf("read deliveries: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (deliveryRow, error) {
		var d deliveryRow
		err := row.Scan(&d.Destination, &d.Attempts, &d.Delivered, &d.Failed, &d.LastError)
		return d, err
	})
	if err != nil {
		t.Fatalf("read deliveries: %v", err)
	}
	return out
}

// outboxState returns "pending", "delivered" or "failed" for an outbox row.
func outboxState(t *testing.T, st *store.Store, id string) string {
	t.Helper()
	var state string
	err := st.Pool.QueryRow(testContext(t), `SELECT CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
		WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END FROM outbox WHERE id = $1`, id).Scan(&state)
	if err != nil {
		t.Fatalf("read outbox row %s: %v", id, err)
	}
	return state
}

// syncBuffer is a bytes.Buffer safe for the dispatcher's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// request is one HTTP request a test receiver got.
type request struct {
	Header http.Header
	Path   string
	Body   []byte
}

// receiver is an HTTP server on 127.0.0.1 that records requests and answers each with
// the status its respond function returns for the request's position, from 0.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	respond  func(n int, r *http.Request) int
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.requests)
	rc.requests = append(rc.requests, request{Header: r.Header.Clone(), Path: r.URL.Path, Body: body})
	rc.mu.Unlock()

	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(n, r)
	}
	w.WriteHeader(status)
	if strings.HasSuffix(r.URL.Path, "chat.postMessage") {
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C0123456789","ts":"1700000000.000100"}`)
	} else {
		_, _ = io.WriteString(w, "ok")
	}
}

func (rc *receiver) received() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.requests...)
}

func (rc *receiver) count() int { return len(rc.received()) }

// webhookBodies decodes the bodies of the requests as events.
func webhookBodies(t *testing.T, reqs []request) []Event {
	t.Helper()
	events := make([]Event, len(reqs))
	for i, r := range reqs {
		if err := json.Unmarshal(r.Body, &events[i]); err != nil {
			t.Fatalf("decode webhook body %q: %v", r.Body, err)
		}
	}
	return events
}

// mailServer is an SMTP server on 127.0.0.1 that accepts mail after AUTH PLAIN and
// records the raw messages.
type mailServer struct {
	addr     string
	port     int
	caFile   string
	mu       sync.Mutex
	messages []string
}

const (
	mailUser     = "changesync"
	mailPassword = "s3cret-mail-password"
)

// newMailServer starts the server; implicit selects TLS from the first byte instead of
// STARTTLS.
func newMailServer(t *testing.T, implicit bool) *mailServer {
	t.Helper()
	cert, caFile := selfSignedCert(t)
	ms := &mailServer{caFile: caFile}

	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &mailSession{server: ms}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if implicit {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	ms.addr = ln.Addr().String()
	ms.port = ln.Addr().(*net.TCPAddr).Port

	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp server: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return ms
}

func (ms *mailServer) received() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]string(nil), ms.messages...)
}

type mailSession struct {
	server *mailServer
	authed bool
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != mailUser || password != mailPassword {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	return nil
}

func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *mailSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.server.mu.Lock()
	s.server.messages = append(s.server.messages, string(data))
	s.server.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

func emailConfig(ms *mailServer, tlsMode string, events ...EventType) Email {
	return Email{
		Destination: Destination{Name: "mail", Events: events, Timeout: 5 * time.Second},
		Host:        "127.0.0.1", Port: ms.port, TLS: tlsMode, CAFile: ms.caFile, ServerName: "127.0.0.1",
		Username: mailUser, PasswordEnv: "MAIL_PASSWORD", Password: mailPassword,
		From: "changesync@example.com", To: []string{"oncall@example.com"}, SubjectPrefix: DefaultSubjectPrefix,
	}
}

// selfSignedCert returns a certificate for 127.0.0.1 and the path of its PEM file.
func selfSignedCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "changesync test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}
