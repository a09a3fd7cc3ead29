package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/pgtest"
)

const demoSourceDDL = `
CREATE SCHEMA crm;
CREATE TABLE crm.customers (
	id         int PRIMARY KEY,
	name       text NOT NULL,
	address    text,
	zip        text,
	notes      text,
	updated_by text
);
-- The old row of every UPDATE, so that the rules' "changed" lists exactly the changed columns.
ALTER TABLE crm.customers REPLICA IDENTITY FULL;`

const demoTargetDDL = `
CREATE SCHEMA billing;
CREATE TABLE billing.customers (
	id              int PRIMARY KEY,
	name            text NOT NULL,
	billing_address text,
	zip             text,
	created_at      timestamptz NOT NULL DEFAULT now()
);`

const demoTargetRows = "SELECT id, name, billing_address, zip FROM billing.customers ORDER BY id"

const demoConfig = `# changesync configuration written by the demo
source:
  url_env: DEMO_SOURCE_URL
  slot: demo
  publication: demo
  snapshot: initial
target:
  url_env: DEMO_TARGET_URL
tables:
  - source: crm.customers
    target: billing.customers
    columns: {address: billing_address}
    exclude: [notes, updated_by]
    actor_column: updated_by
rules:
  - name: zip-is-valid
    table: crm.customers
    when: "'zip' in changed && (new.zip == null || !new.zip.matches('^[0-9]{5}$'))"
    action: reject
    reason: a zip code has five digits
  - name: name-change-needs-review
    table: crm.customers
    when: "op == 'update' && 'name' in changed"
    action: hold
    reason: a renamed customer is checked before billing changes
log: {level: info, format: json}
api: {listen: '%s'}
`

// runDemo plays the reference scenario on a throwaway cluster: customers are created in
// crm, one of them moves, and only the address and zip reach billing.customers.
func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	keep := fs.Bool("keep", false, "leave the cluster running until interrupted, to look around with psql")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{fmt.Sprintf("demo: %v", err)}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("demo: unexpected argument %q", fs.Arg(0))}
	}
	d := &demo{out: out}
	defer d.cleanup()
	if err := d.start(ctx); err != nil {
		return err
	}
	if err := d.play(ctx); err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(out, "\nThe cluster keeps running until you press Ctrl-C:\n  psql '%s'\n  psql '%s'\n",
			d.cluster.URL("crm"), d.cluster.URL("billing"))
		<-ctx.Done()
	}
	if err := d.stopSidecar(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nSidecar stopped with SIGTERM and exit status 0. Demo finished; the cluster is removed.")
	return nil
}

type demo struct {
	out     io.Writer
	cluster *pgtest.Cluster
	dir     string
	cfgPath string
	apiAddr string
	sidecar *exec.Cmd
	exited  chan error
	src     *pgx.Conn
	dst     *pgx.Conn
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n== "+format+"\n", args...)
}

// start creates the cluster, the two databases and the config, and starts the sidecar.
func (d *demo) start(ctx context.Context) error {
	d.step("Starting a throwaway PostgreSQL with wal_level=logical")
	var err error
	if d.cluster, err = pgtest.Start(ctx); err != nil {
		return err
	}
	for _, db := range []string{"crm", "billing"} {
		if err := d.cluster.CreateDatabase(ctx, db); err != nil {
			return err
		}
	}
	if d.src, err = pgx.Connect(ctx, d.cluster.URL("crm")); err != nil {
		return fmt.Errorf("connect to crm: %w", err)
	}
	if d.dst, err = pgx.Connect(ctx, d.cluster.URL("billing")); err != nil {
		return fmt.Errorf("connect to billing: %w", err)
	}
	if _, err := d.src.Exec(ctx, demoSourceDDL); err != nil {
		return fmt.Errorf("create crm.customers: %w", err)
	}
	if _, err := d.dst.Exec(ctx, demoTargetDDL); err != nil {
		return fmt.Errorf("create billing.customers: %w", err)
	}
	_, err = d.src.Exec(ctx, `INSERT INTO crm.customers VALUES
		(1, 'Ada Lovelace', '12 St James Sq', '10001', 'prefers email', 'import'),
		(2, 'Grace Hopper', '1 Navy Way', '20301', NULL, 'import')`)
	if err != nil {
		return fmt.Errorf("insert the first customers: %w", err)
	}
	fmt.Fprintln(d.out, "crm.customers (source) and billing.customers (target) created; "+
		"2 customers exist before changesync starts.")

	if d.dir, err = os.MkdirTemp("", "changesync-demo-"); err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	cfgPath := filepath.Join(d.dir, "changesync.yaml")
	d.cfgPath = cfgPath
	if d.apiAddr, err = freeAddress(ctx); err != nil {
		return err
	}
	config := fmt.Sprintf(demoConfig, d.apiAddr)
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return fmt.Errorf("write demo configuration: %w", err)
	}
	d.step("Starting the sidecar: changesync run --config %s", cfgPath)
	fmt.Fprint(d.out, config)
	return d.startSidecar(cfgPath)
}

func (d *demo) startSidecar(cfgPath string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the changesync binary: %w", err)
	}
	// The sidecar is stopped with SIGTERM by stopSidecar, not by a context.
	d.sidecar = exec.Command(self, "run", "--config", cfgPath) //nolint:noctx // see above
	d.sidecar.Env = append(os.Environ(),
		"DEMO_SOURCE_URL="+d.cluster.URL("crm"), "DEMO_TARGET_URL="+d.cluster.URL("billing"))
	logFile, err := os.Create(filepath.Join(d.dir, "sidecar.log"))
	if err != nil {
		return fmt.Errorf("create sidecar log: %w", err)
	}
	d.sidecar.Stdout, d.sidecar.Stderr = logFile, logFile
	d.sidecar.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.sidecar.Start(); err != nil {
		return fmt.Errorf("start the sidecar: %w", err)
	}
	d.exited = make(chan error, 1)
	go func() {
		d.exited <- d.sidecar.Wait()
		_ = logFile.Close()
	}()
	return nil
}

// play runs the scenario and prints what changesync recorded.
func (d *demo) play(ctx context.Context) error {
	if err := d.waitFor(ctx, "the initial snapshot", "SELECT count(*) = 2 FROM billing.customers"); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "The initial snapshot copied both existing customers:")
	if err := d.printRows(ctx, d.dst, demoTargetRows); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "and recorded the copy as one summary row (changesync.snapshots), not one audit row per customer:")
	err := d.printRows(ctx, d.dst, `SELECT source_table, target_table, rows_copied,
		(finished_at - started_at)::text AS duration,
		'0/0'::pg_lsn + consistent_lsn AS consistent_lsn
		FROM changesync.snapshots ORDER BY id`)
	if err != nil {
		return err
	}

	d.step("A new customer signs up in the CRM")
	_, err = d.src.Exec(ctx, `INSERT INTO crm.customers
		VALUES (3, 'Alan Turing', '2 Bletchley Park', '90210', 'VIP', 'web-signup')`)
	if err != nil {
		return fmt.Errorf("insert customer 3: %w", err)
	}
	if err := d.waitFor(ctx, "customer 3", "SELECT count(*) = 3 FROM billing.customers"); err != nil {
		return err
	}

	d.step("Customer 2 changes address and zip (the application names the user in the transaction)")
	tx := `BEGIN;
SELECT pg_logical_emit_message(true, 'changesync', '{"user": "alice@crm"}');
UPDATE crm.customers SET address = '7 Harbor Rd', zip = '02139', notes = 'moved' WHERE id = 2;
COMMIT;`
	fmt.Fprintln(d.out, tx)
	if _, err := d.src.Exec(ctx, tx); err != nil {
		return fmt.Errorf("update customer 2: %w", err)
	}
	if err := d.waitFor(ctx, "the address change",
		"SELECT count(*) = 1 FROM billing.customers WHERE id = 2 AND zip = '02139'"); err != nil {
		return err
	}

	d.step("The change event changesync detected (changesync.change_events)")
	err = d.printRows(ctx, d.dst, `SELECT change_type, table_name, row_key, status, actor, thread_id,
		old_data, new_data FROM changesync.change_events WHERE row_key = '2' AND change_type = 'update'`)
	if err != nil {
		return err
	}
	d.step("The delta applied to billing.customers (changesync.sync_log): only the changed columns")
	err = d.printRows(ctx, d.dst, `SELECT l.target_table, l.source_id, l.performed_by, l.diff
		FROM changesync.sync_log l JOIN changesync.change_events e ON e.id = l.change_event_id
		WHERE e.row_key = '2' AND e.change_type = 'update'`)
	if err != nil {
		return err
	}
	d.step("billing.customers now")
	if err := d.printRows(ctx, d.dst, demoTargetRows); err != nil {
		return err
	}
	if err := d.validationSteps(ctx); err != nil {
		return err
	}
	d.step("The audit trail of every change")
	err = d.printRows(ctx, d.dst, `SELECT change_type, row_key, status, coalesce(actor, '') AS actor,
		(SELECT diff FROM changesync.sync_log l WHERE l.change_event_id = e.id AND l.undo_request IS NULL) AS diff
		FROM changesync.change_events e ORDER BY source_lsn, seq`)
	if err != nil {
		return err
	}
	return d.undoStep(ctx)
}

// undoStep undoes customer 2's move on the target and shows that a second undo of the
// same change is refused.
func (d *demo) undoStep(ctx context.Context) error {
	base := "http://" + d.apiAddr
	d.step("The audit through the HTTP API: GET %s/change-events/?table=crm.customers&row_key=2", base)
	status, body, err := d.api(ctx, http.MethodGet, base+"/change-events/?table=crm.customers&row_key=2", "")
	if err != nil {
		return err
	}
	var list struct {
		Items []struct {
			ID         string `json:"id"`
			ChangeType string `json:"change_type"`
			Status     string `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil || status != http.StatusOK {
		return fmt.Errorf("GET /change-events/: status %d, %s", status, body)
	}
	var changeID string
	for _, item := range list.Items {
		fmt.Fprintf(d.out, "  id=%s  change_type=%s  status=%s\n", item.ID, item.ChangeType, item.Status)
		if item.ChangeType == "update" && item.Status == "synced" {
			changeID = item.ID
		}
	}
	if changeID == "" {
		return errors.New("the API lists no synced update of customer 2")
	}

	request := fmt.Sprintf(`{"change_id": %q, "reason": "address entered on the wrong customer"}`, changeID)
	d.step("The move was a mistake: POST %s/undo-request/ %s", base, request)
	status, body, err = d.api(ctx, http.MethodPost, base+"/undo-request/", request)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "  HTTP %d %s\n", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("POST /undo-request/: status %d", status)
	}
	if err := d.printRows(ctx, d.dst, demoTargetRows); err != nil {
		return err
	}
	err = d.printRows(ctx, d.dst, `SELECT change_event, requestor, reason, status FROM changesync.undo_requests`)
	if err != nil {
		return err
	}

	d.step("A second undo of the same change is refused")
	status, body, err = d.api(ctx, http.MethodPost, base+"/undo-request/", request)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "  HTTP %d %s\n", status, body)
	if status != http.StatusConflict {
		return fmt.Errorf("the second undo of the same change returned status %d, want 409", status)
	}
	return nil
}

// api sends one request to the sidecar's API and returns the status and the body.
func (d *demo) api(ctx context.Context, method, url, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(raw), err
}

// changesync runs the demo's own binary with the demo's database URLs and returns its
// combined output.
func (d *demo) changesync(ctx context.Context, args ...string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the changesync binary: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(),
		"DEMO_SOURCE_URL="+d.cluster.URL("crm"), "DEMO_TARGET_URL="+d.cluster.URL("billing"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// validationSteps shows a change that a rule rejects and one that a rule holds until an
// operator approves it with changesync release.
func (d *demo) validationSteps(ctx context.Context) error {
	d.step("Customer 1 gets a malformed zip: rule zip-is-valid rejects the change")
	if _, err := d.src.Exec(ctx, `UPDATE crm.customers SET zip = '1OOO1' WHERE id = 1`); err != nil {
		return fmt.Errorf("update customer 1: %w", err)
	}
	err := d.waitFor(ctx, "the rejected change",
		"SELECT count(*) = 1 FROM changesync.change_events WHERE status = 'rejected'")
	if err != nil {
		return err
	}
	err = d.printRows(ctx, d.dst, `SELECT row_key, status, decided_by, decision_reason, new_data->>'zip' AS zip
		FROM changesync.change_events WHERE status = 'rejected'`)
	if err != nil {
		return err
	}

	d.step("Customer 3 is renamed: rule name-change-needs-review holds the change, and the next " +
		"change of that row waits behind it")
	_, err = d.src.Exec(ctx, `UPDATE crm.customers SET name = 'Alan M. Turing' WHERE id = 3;
		UPDATE crm.customers SET zip = '90211' WHERE id = 3`)
	if err != nil {
		return fmt.Errorf("update customer 3: %w", err)
	}
	err = d.waitFor(ctx, "the held change",
		"SELECT count(*) = 1 FROM changesync.change_events WHERE status = 'blocked'")
	if err != nil {
		return err
	}
	err = d.printRows(ctx, d.dst, `SELECT row_key, status, decided_by, new_data->>'name' AS name,
		new_data->>'zip' AS zip FROM changesync.change_events
		WHERE row_key = '3' AND change_type = 'update' ORDER BY seq, source_lsn`)
	if err != nil {
		return err
	}
	var heldID string
	err = d.dst.QueryRow(ctx, "SELECT id::text FROM changesync.change_events WHERE status = 'held'").Scan(&heldID)
	if err != nil {
		return fmt.Errorf("find the held change: %w", err)
	}

	d.step("An operator approves it: changesync release --change %s --approve --by ops@billing", heldID)
	out, err := d.changesync(ctx, "release", "--config", d.cfgPath, "--change", heldID,
		"--approve", "--by", "ops@billing", "--reason", "rename confirmed with the customer")
	fmt.Fprint(d.out, out)
	if err != nil {
		return fmt.Errorf("changesync release: %w", err)
	}
	return d.printRows(ctx, d.dst, "SELECT id, name, billing_address, zip FROM billing.customers WHERE id = 3")
}

// waitFor polls the target until query returns true, or fails after 30 s or when the
// sidecar exits.
func (d *demo) waitFor(ctx context.Context, milestone, query string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done bool
		if err := d.dst.QueryRow(ctx, query).Scan(&done); err == nil && done {
			return nil
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("the sidecar exited while waiting for %s (%w); its log:\n%s", milestone, err, d.sidecarLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not reach billing within 30s; sidecar log:\n%s", milestone, d.sidecarLog())
		}
	}
}

func (d *demo) sidecarLog() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "sidecar.log"))
	return string(b)
}

// printRows prints the result of a query as one block per row, with JSON values indented.
func (d *demo) printRows(ctx context.Context, conn *pgx.Conn, query string) error {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return fmt.Errorf("query the demo tables: %w", err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		var parts []string
		for i, v := range vals {
			parts = append(parts, fmt.Sprintf("%s=%s", fields[i].Name, formatValue(v)))
		}
		fmt.Fprintln(d.out, "  "+strings.Join(parts, "  "))
	}
	return rows.Err()
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:])
	default:
		return fmt.Sprint(x)
	}
}

// stopSidecar sends SIGTERM and checks that the sidecar exits 0 within 30 s.
func (d *demo) stopSidecar() error {
	if err := d.sidecar.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal the sidecar: %w", err)
	}
	select {
	case err := <-d.exited:
		d.sidecar = nil
		if err != nil {
			return fmt.Errorf("the sidecar exited with %w after SIGTERM; its log:\n%s", err, d.sidecarLog())
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("the sidecar did not exit within 30s of SIGTERM")
	}
}

func (d *demo) cleanup() {
	if d.sidecar != nil && d.sidecar.Process != nil {
		_ = d.sidecar.Process.Kill()
		<-d.exited //nolint:errcheck // killed on purpose, so the exit status is meaningless
	}
	if d.src != nil {
		_ = d.src.Close(context.Background())
	}
	if d.dst != nil {
		_ = d.dst.Close(context.Background())
	}
	d.cluster.Stop()
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

// freeAddress returns a loopback address with a port that is free now, for the API of
// the demo's sidecar, so that the demo does not depend on the default port being free.
func freeAddress(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port for the API: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr, nil
}
