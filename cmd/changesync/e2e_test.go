package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/pgtest"
)

// sidecar is one changesync run process of a test.
type sidecar struct {
	cmd  *exec.Cmd
	log  *logBuffer
	done chan error
}

// logBuffer collects a process's output; tests read it while the process writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startSidecar runs `changesync run --config cfgPath` with the source and target URLs in
// its environment.
func startSidecar(t *testing.T, cfgPath, sourceURL, targetURL string) *sidecar {
	t.Helper()
	s := &sidecar{log: &logBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(binary, "run", "--config", cfgPath)
	s.cmd.Env = append(os.Environ(), "CHANGESYNC_SOURCE_URL="+sourceURL, "CHANGESYNC_TARGET_URL="+targetURL)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sidecar: %v", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done //nolint:errcheck // killed on purpose
		}
	})
	return s
}

// stop sends sig and waits for the process to exit, returning its exit error.
func (s *sidecar) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal sidecar: %v", err)
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("sidecar did not exit within 30s of %v; log:\n%s", sig, s.log)
		return nil
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "changesync.yaml")
	if !strings.Contains(body, "\napi:") {
		// Any free port, so that sidecars of tests never compete for the default one.
		body += "api: {listen: '127.0.0.1:0'}\n"
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitUntil polls cond until it returns true or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, s *sidecar, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; sidecar log:\n%s", timeout, what, tail(s.log.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// tableDigest returns a digest of a table's rows in key order, comparable between
// databases.
func tableDigest(t *testing.T, conn *pgx.Conn, table, key string) string {
	t.Helper()
	var digest string
	q := fmt.Sprintf("SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY x.%s)), 'empty') FROM %s x", key, table)
	if err := conn.QueryRow(context.Background(), q).Scan(&digest); err != nil {
		t.Fatal(err)
	}
	return digest
}

var pgbenchTables = []struct{ name, key string }{
	{"pgbench_accounts", "aid"}, {"pgbench_branches", "bid"}, {"pgbench_tellers", "tid"},
}

const pgbenchConfig = `
source:
  slot: bench
  publication: bench
  snapshot: initial
tables:
  - source: public.pgbench_accounts
  - source: public.pgbench_branches
  - source: public.pgbench_tellers
log: {level: debug}
`

// pgbench runs the pgbench binary of the test cluster against url.
func pgbench(t *testing.T, url string, args ...string) string {
	t.Helper()
	bin := filepath.Join(pgtest.Server(t).BinDir, "pgbench")
	out, err := exec.Command(bin, append(args, url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

func pgbenchTransactions(t *testing.T, out string) int {
	t.Helper()
	m := processedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no transaction count in pgbench output:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// setupPgbench initializes pgbench on the source and creates its empty tables on the
// target.
func setupPgbench(t *testing.T) (sourceURL, targetURL string, src, dst *pgx.Conn) {
	sourceURL, targetURL = pgtest.NewDB(t), pgtest.NewDB(t)
	pgbench(t, sourceURL, "-i", "-q", "-s", "1")
	pgbench(t, targetURL, "-i", "-q", "-I", "dtp")
	return sourceURL, targetURL, connect(t, sourceURL), connect(t, targetURL)
}

func countEvents(t *testing.T, dst *pgx.Conn) int {
	t.Helper()
	var n int
	if err := dst.QueryRow(context.Background(), "SELECT count(*) FROM changesync.change_events").Scan(&n); err != nil {
		return -1
	}
	return n
}

func snapshotDone(dst *pgx.Conn) bool {
	var n int
	err := dst.QueryRow(context.Background(), "SELECT count(*) FROM changesync.snapshots").Scan(&n)
	return err == nil && n == len(pgbenchTables)
}

// checkTargetEqualsSource compares every pgbench table row for row.
func checkTargetEqualsSource(t *testing.T, src, dst *pgx.Conn) {
	t.Helper()
	for _, tbl := range pgbenchTables {
		s, d := tableDigest(t, src, tbl.name, tbl.key), tableDigest(t, dst, tbl.name, tbl.key)
		if s != d {
			t.Errorf("table %s differs: source digest %s, target digest %s", tbl.name, s, d)
		}
	}
}

func targetMatches(t *testing.T, src, dst *pgx.Conn) bool {
	for _, tbl := range pgbenchTables {
		if tableDigest(t, src, tbl.name, tbl.key) != tableDigest(t, dst, tbl.name, tbl.key) {
			return false
		}
	}
	return true
}

func TestPgbenchWorkloadSyncsExactly(t *testing.T) {
	sourceURL, targetURL, src, dst := setupPgbench(t)
	s := startSidecar(t, writeConfig(t, pgbenchConfig), sourceURL, targetURL)
	waitUntil(t, 60*time.Second, "the initial snapshot", s, func() bool { return snapshotDone(dst) })
	checkTargetEqualsSource(t, src, dst)

	out := pgbench(t, sourceURL, "-n", "-T", "5", "-c", "4", "-j", "2")
	want := 3 * pgbenchTransactions(t, out) // each TPC-B transaction changes one row of each table

	waitUntil(t, 60*time.Second, "catch-up", s, func() bool { return countEvents(t, dst) >= want })
	waitUntil(t, 30*time.Second, "target equal to source", s, func() bool { return targetMatches(t, src, dst) })
	checkTargetEqualsSource(t, src, dst)
	if got := countEvents(t, dst); got != want {
		t.Errorf("change_events = %d, want %d (3 per pgbench transaction)", got, want)
	}
	var notSynced int
	err := dst.QueryRow(context.Background(),
		"SELECT count(*) FROM changesync.change_events WHERE status <> 'synced'").Scan(&notSynced)
	if err != nil {
		t.Fatal(err)
	}
	if notSynced != 0 {
		t.Errorf("%d change events are not synced", notSynced)
	}

	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("sidecar exit after SIGTERM: %v, want status 0; log:\n%s", err, tail(s.log.String(), 4000))
	}
	checkSlotConfirmed(t, src, dst, "bench")
	if strings.Contains(s.log.String(), "final standby status update failed") {
		t.Errorf("the clean stop did not report its last position; log:\n%s", tail(s.log.String(), 4000))
	}
}

// checkSlotConfirmed checks that a clean stop confirmed to the slot the end of the last
// transaction that the checkpoint records, so that a restart has nothing to resend.
func checkSlotConfirmed(t *testing.T, src, dst *pgx.Conn, slot string) {
	t.Helper()
	var endLSN int64
	err := dst.QueryRow(context.Background(), "SELECT end_lsn FROM changesync.checkpoints").Scan(&endLSN)
	if err != nil {
		t.Fatal(err)
	}
	var behind int64
	err = src.QueryRow(context.Background(), `SELECT '0/0'::pg_lsn + $2::bigint - confirmed_flush_lsn
		FROM pg_replication_slots WHERE slot_name = $1`, slot, endLSN).Scan(&behind)
	if err != nil {
		t.Fatal(err)
	}
	if behind > 0 {
		t.Errorf("slot %s confirmed position is %d bytes before the checkpoint's end after a clean stop",
			slot, behind)
	}
}

func TestSigkillDuringWorkloadLosesNothing(t *testing.T) {
	sourceURL, targetURL, src, dst := setupPgbench(t)
	cfgPath := writeConfig(t, pgbenchConfig)
	s := startSidecar(t, cfgPath, sourceURL, targetURL)
	waitUntil(t, 60*time.Second, "the initial snapshot", s, func() bool { return snapshotDone(dst) })

	bench := make(chan string, 1)
	go func() {
		bin := filepath.Join(pgtest.Server(t).BinDir, "pgbench")
		out, err := exec.Command(bin, "-n", "-T", "20", "-c", "4", "-j", "2", sourceURL).CombinedOutput()
		if err != nil {
			out = append(out, []byte("\npgbench error: "+err.Error())...)
		}
		bench <- string(out)
	}()

	// Each kill comes at a random moment after the restarted sidecar has made progress,
	// so that every kill interrupts real work rather than a startup.
	const kills = 5
	for i := range kills {
		before := countEvents(t, dst)
		waitUntil(t, 60*time.Second, "progress after a restart", s, func() bool { return countEvents(t, dst) > before })
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
		_ = s.stop(t, syscall.SIGKILL)
		t.Logf("kill %d: %d change events recorded before SIGKILL", i+1, countEvents(t, dst))
		s = startSidecar(t, cfgPath, sourceURL, targetURL)
	}
	out := <-bench
	want := 3 * pgbenchTransactions(t, out)

	waitUntil(t, 90*time.Second, "catch-up", s, func() bool { return countEvents(t, dst) >= want })
	waitUntil(t, 30*time.Second, "target equal to source", s, func() bool { return targetMatches(t, src, dst) })
	checkTargetEqualsSource(t, src, dst)
	if got := countEvents(t, dst); got != want {
		t.Errorf("change_events = %d, want %d: a change is missing or recorded twice", got, want)
	}
	var dupes int
	err := dst.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT source_lsn, seq FROM
		changesync.change_events GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dupes)
	if err != nil {
		t.Fatal(err)
	}
	if dupes != 0 {
		t.Errorf("%d source changes are recorded more than once", dupes)
	}
	var orphanLogs int
	err = dst.QueryRow(context.Background(), `SELECT count(*) - count(DISTINCT change_event_id)
		FROM changesync.sync_log`).Scan(&orphanLogs)
	if err != nil {
		t.Fatal(err)
	}
	if orphanLogs != 0 {
		t.Errorf("%d changes have more than one sync_log row", orphanLogs)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("sidecar exit after SIGTERM: %v; log:\n%s", err, tail(s.log.String(), 4000))
	}
}

func TestDemoRunsScenario(t *testing.T) {
	var out bytes.Buffer
	cmd := exec.Command(binary, "demo")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("changesync demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`"zip":{"new":"02139","old":"20301"}`, "alice@crm", "exit status 0",
		"status=rejected  decided_by=rule:zip-is-valid",
		"1 held change(s) approved, 1 blocked change(s) applied",
		"id=3  name=Alan M. Turing  billing_address=2 Bletchley Park  zip=90211",
		"reason=address entered on the wrong customer  status=applied",
		`HTTP 409 {"code":"already_undone"`,
		`HTTP 200 {"request_id"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRefusesTableWithoutKeyBeforePublishing(t *testing.T) {
	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	src := connect(t, sourceURL)
	for _, url := range []string{sourceURL, targetURL} {
		if _, err := connect(t, url).Exec(context.Background(), "CREATE TABLE nopk (a int, b text)"); err != nil {
			t.Fatal(err)
		}
	}
	s := startSidecar(t, writeConfig(t, "tables: [{source: public.nopk}]\n"), sourceURL, targetURL)
	select {
	case err := <-s.done:
		if err == nil {
			t.Fatalf("run exited 0 with a table that has no key; log:\n%s", s.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not refuse to start within 30s; log:\n%s", s.log)
	}
	if !strings.Contains(s.log.String(), "no primary key or replica identity index") {
		t.Errorf("log does not name the missing key:\n%s", s.log)
	}
	var publications int
	if err := src.QueryRow(context.Background(), "SELECT count(*) FROM pg_publication").Scan(&publications); err != nil {
		t.Fatal(err)
	}
	if publications != 0 {
		t.Errorf("%d publications exist after the refused start, want 0", publications)
	}
	// The application's own UPDATE still works.
	if _, err := src.Exec(context.Background(), "INSERT INTO nopk VALUES (1, 'a'); UPDATE nopk SET b = 'b'"); err != nil {
		t.Errorf("UPDATE on the source failed after the refused start: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args       []string
		wantStatus int
		wantOutput string
	}{
		{[]string{"run", "-h"}, 0, "usage: changesync run --config FILE"},
		{[]string{"run", "--config", "c.yaml", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"run"}, 2, "missing --config FILE"},
		{[]string{"check", "--config", "does-not-exist.yaml"}, 1, "does-not-exist.yaml"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"version"}, 0, "changesync "},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := exec.Command(binary, tt.args...).CombinedOutput()
			status := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				status = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tt.wantStatus {
				t.Errorf("exit status %d, want %d; output:\n%s", status, tt.wantStatus, out)
			}
			if !strings.Contains(string(out), tt.wantOutput) {
				t.Errorf("output lacks %q:\n%s", tt.wantOutput, out)
			}
		})
	}
}

func TestStandbyTakesOverWhenActiveDies(t *testing.T) {
	sourceURL, targetURL, src, dst := setupPgbench(t)
	cfgPath := writeConfig(t, pgbenchConfig)
	first := startSidecar(t, cfgPath, sourceURL, targetURL)
	waitUntil(t, 60*time.Second, "the initial snapshot", first, func() bool { return snapshotDone(dst) })
	second := startSidecar(t, cfgPath, sourceURL, targetURL)
	waitUntil(t, 30*time.Second, "the second process to stand by", second, func() bool {
		return strings.Contains(second.log.String(), "standing by to take over")
	})

	bench := make(chan string, 1)
	go func() {
		bin := filepath.Join(pgtest.Server(t).BinDir, "pgbench")
		out, err := exec.Command(bin, "-n", "-T", "8", "-c", "4", "-j", "2", sourceURL).CombinedOutput()
		if err != nil {
			out = append(out, []byte("\npgbench error: "+err.Error())...)
		}
		bench <- string(out)
	}()
	before := countEvents(t, dst)
	waitUntil(t, 30*time.Second, "progress of the active process", first, func() bool { return countEvents(t, dst) > before })
	_ = first.stop(t, syscall.SIGKILL)
	waitUntil(t, 30*time.Second, "the standby to become active", second, func() bool {
		return strings.Contains(second.log.String(), "active for the pipeline")
	})
	want := 3 * pgbenchTransactions(t, <-bench)

	waitUntil(t, 90*time.Second, "catch-up", second, func() bool { return countEvents(t, dst) >= want })
	waitUntil(t, 30*time.Second, "target equal to source", second, func() bool { return targetMatches(t, src, dst) })
	checkTargetEqualsSource(t, src, dst)
	if got := countEvents(t, dst); got != want {
		t.Errorf("change_events = %d, want %d: a change is missing or recorded twice", got, want)
	}
	if err := second.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("standby exit after SIGTERM: %v", err)
	}
}

// runCommand runs a changesync command with the source and target URLs in its
// environment and fails the test when it exits with an error.
func runCommand(t *testing.T, sourceURL, targetURL string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "CHANGESYNC_SOURCE_URL="+sourceURL, "CHANGESYNC_TARGET_URL="+targetURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("changesync %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestTeardownThenSetupCopiesAgain(t *testing.T) {
	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	src, dst := connect(t, sourceURL), connect(t, targetURL)
	ctx := context.Background()
	for _, conn := range []*pgx.Conn{src, dst} {
		if _, err := conn.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, v text)"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.Exec(ctx, "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 1000) g"); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "source: {slot: recopy, snapshot: initial}\ntables: [{source: public.items}]\n")
	count := func() int {
		var n int
		if err := dst.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
			return -1
		}
		return n
	}

	s := startSidecar(t, cfg, sourceURL, targetURL)
	waitUntil(t, 60*time.Second, "the initial copy", s, func() bool { return count() == 1000 })
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("sidecar exit after SIGTERM: %v; log:\n%s", err, tail(s.log.String(), 4000))
	}

	// The recovery of a lost slot: drop slot and publication, empty the target, start over.
	out := runCommand(t, sourceURL, targetURL, "teardown", "--config", cfg)
	if !strings.Contains(out, "checkpoint deleted") {
		t.Errorf("teardown output does not report the deleted checkpoint:\n%s", out)
	}
	if _, err := dst.Exec(ctx, "TRUNCATE items"); err != nil {
		t.Fatal(err)
	}
	runCommand(t, sourceURL, targetURL, "setup", "--config", cfg)

	s = startSidecar(t, cfg, sourceURL, targetURL)
	waitUntil(t, 60*time.Second, "the second initial copy", s, func() bool { return count() == 1000 })
	if _, err := src.Exec(ctx, "UPDATE items SET v = 'after' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the update after the copy", s, func() bool {
		var v string
		return dst.QueryRow(ctx, "SELECT v FROM items WHERE id = 1").Scan(&v) == nil && v == "after"
	})
}
