package capture

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// waitTimeout bounds every wait for the server in these tests.
const waitTimeout = 20 * time.Second

// fixture is a fresh database with a Reader for it.
type fixture struct {
	t    *testing.T
	url  string
	conn *pgx.Conn
	cfg  Config
	logs *logRecorder
}

// newFixture creates a database, runs setupSQL in it, and configures a Reader for tables.
func newFixture(t *testing.T, setupSQL string, tables ...string) *fixture {
	t.Helper()
	url := pgtest.NewDB(t)
	f := &fixture{t: t, url: url, logs: &logRecorder{}}
	f.conn = connect(t, url)
	if setupSQL != "" {
		f.exec(setupSQL)
	}

	f.cfg = Config{
		URL: url, Publication: "cs_pub", Slot: "cs_slot",
		StatusInterval: 100 * time.Millisecond,
	}
	for _, name := range tables {
		schema, table, _ := strings.Cut(name, ".")
		f.cfg.Tables = append(f.cfg.Tables, change.TableName{Schema: schema, Name: table})
	}
	return f
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// reader returns a Reader for the fixture's configuration.
func (f *fixture) reader() *Reader {
	f.t.Helper()
	r, err := New(f.cfg, WithLogger(slog.New(f.logs)))
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	return r
}

// setup returns a Reader whose publication and slot exist.
func (f *fixture) setup() *Reader {
	f.t.Helper()
	r := f.reader()
	if _, err := r.Setup(f.ctx()); err != nil {
		f.t.Fatalf("Setup: %v", err)
	}
	return r
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	f.t.Cleanup(cancel)
	return ctx
}

// exec runs SQL through the simple protocol, so one call may hold several statements.
func (f *fixture) exec(sql string) {
	f.t.Helper()
	if _, err := f.conn.PgConn().Exec(f.ctx(), sql).ReadAll(); err != nil {
		f.t.Fatalf("exec %q: %v", sql, err)
	}
}

// queryLSN runs a query that returns one pg_lsn.
func (f *fixture) queryLSN(sql string, args ...any) change.LSN {
	f.t.Helper()
	var text string
	if err := f.conn.QueryRow(f.ctx(), sql, args...).Scan(&text); err != nil {
		f.t.Fatalf("query %q: %v", sql, err)
	}
	lsn, err := change.ParseLSN(text)
	if err != nil {
		f.t.Fatal(err)
	}
	return lsn
}

// slotConfirmed returns confirmed_flush_lsn of the fixture's slot.
func (f *fixture) slotConfirmed() change.LSN {
	f.t.Helper()
	return f.queryLSN(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots
		WHERE slot_name = $1`, f.cfg.Slot)
}

// stream runs Reader.Stream in the background until the test ends or stop is called.
type stream struct {
	t      *testing.T
	out    chan *change.Tx
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

func startStream(t *testing.T, r *Reader, start change.LSN, buffer int) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{t: t, out: make(chan *change.Tx, buffer), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = r.Stream(ctx, start, s.out)
	}()
	t.Cleanup(func() { _ = s.stop() }) // a test that cares about the error calls stop itself
	return s
}

// stop ends the stream and returns the error Stream returned.
func (s *stream) stop() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case <-s.done:
		case <-time.After(waitTimeout):
			s.t.Error("Stream did not return after its context ended")
		}
	})
	return s.err
}

// next returns the next transaction that has events, failing the test after waitTimeout.
func (s *stream) next() *change.Tx {
	s.t.Helper()
	for {
		tx := s.nextAny()
		if len(tx.Events) > 0 {
			return tx
		}
	}
}

// nextAny returns the next transaction, with or without events.
func (s *stream) nextAny() *change.Tx {
	s.t.Helper()
	select {
	case tx := <-s.out:
		return tx
	case <-s.done:
		s.t.Fatalf("Stream returned early: %v", s.err)
	case <-time.After(waitTimeout):
		s.t.Fatal("no transaction within the wait timeout")
	}
	return nil
}

// expectNone fails the test when a transaction with events arrives within d.
func (s *stream) expectNone(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case tx := <-s.out:
			if len(tx.Events) > 0 {
				s.t.Fatalf("unexpected transaction xid %d with %d events", tx.Xid, len(tx.Events))
			}
		case <-deadline:
			return
		}
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logRecorder is a slog handler that keeps the messages of the records it handles.
type logRecorder struct {
	mu      sync.Mutex
	records []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, b.String())
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many records contain substr.
func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

// values returns the texts of a tuple, with NULL, Unchanged and Absent marked.
func values(t change.Tuple) []string {
	if t == nil {
		return nil
	}
	out := make([]string, len(t))
	for i, v := range t {
		switch v.Kind {
		case change.Null:
			out[i] = "<null>"
		case change.Unchanged:
			out[i] = "<unchanged>"
		case change.Absent:
			out[i] = "<absent>"
		default:
			out[i] = v.Text
		}
	}
	return out
}

// isPermanent reports whether err is a PermanentError of the given kind.
func isPermanent(err, kind error) bool {
	return IsPermanent(err) && errors.Is(err, kind)
}
