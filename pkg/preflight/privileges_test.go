package preflight

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/pgtest"
)

// useTargetRole creates a login role on the target, runs grants as the superuser with
// every %[1]s replaced by the quoted role, and points d.targetURL at the role. It
// returns the quoted role and the superuser's target URL.
func useTargetRole(t *testing.T, d *databases, prefix, grants string) (quoted, superuserURL string) {
	t.Helper()
	role := prefix + "_" + databaseName(t, d.targetURL)
	if len(role) > 63 {
		role = role[:63]
	}
	quoted = pgx.Identifier{role}.Sanitize()
	superuserURL = d.targetURL
	execSQL(t, superuserURL, "CREATE ROLE "+quoted+" LOGIN; "+strings.ReplaceAll(grants, "%[1]s", quoted))
	t.Cleanup(func() {
		execSQL(t, superuserURL, "DROP OWNED BY "+quoted)
		execSQL(t, pgtest.Server(t).URL("postgres"), "DROP ROLE "+quoted)
	})

	u, err := url.Parse(d.targetURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	d.targetURL = u.String()
	return quoted, superuserURL
}

func TestCheckTargetSchemaUsage(t *testing.T) {
	d := newDatabases(t, sourceDDL, `CREATE SCHEMA "Mixed";
CREATE TABLE "Mixed"."Case Table" (id bigint PRIMARY KEY, name text, billing_address text, zip text);`)
	quoted, superuserURL := useTargetRole(t, &d, "nousage",
		`GRANT SELECT, INSERT, UPDATE, DELETE ON "Mixed"."Case Table" TO %[1]s`)
	cfg := d.config(t, `
tables:
  - source: crm.customers
    target: '"Mixed"."Case Table"'
    columns: {address: billing_address}
    exclude: [password_hash]
`)

	report := check(t, cfg)
	res := result(t, report, `target table "Mixed"."Case Table"`)
	if res.OK {
		t.Fatalf("target table check passed without USAGE on its schema: %q", res.Detail)
	}
	if want := "lacks USAGE on schema Mixed"; !strings.Contains(res.Detail, want) {
		t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
	}
	if want := `GRANT USAGE ON SCHEMA "Mixed" TO ` + quoted; !strings.Contains(res.Fix, want) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
	}
	if report.OK() {
		t.Error("report is OK although the target role lacks USAGE on the target schema")
	}

	execSQL(t, superuserURL, `GRANT USAGE ON SCHEMA "Mixed" TO `+quoted)
	res = result(t, check(t, cfg), `target table "Mixed"."Case Table"`)
	if !res.OK || res.Warn {
		t.Errorf("after the grant: OK %v, warning %v, detail %q; want a clean pass", res.OK, res.Warn, res.Detail)
	}
}

func TestCheckSourceSchemaUsage(t *testing.T) {
	d := newDatabases(t, sourceDDL+"CREATE PUBLICATION changesync FOR TABLE crm.customers;", targetDDL)
	role, superuserURL := useSourceRole(t, &d, "nousage", "REPLICATION", "GRANT SELECT ON crm.customers TO %[1]s")
	quoted := pgx.Identifier{role}.Sanitize()
	cfg := d.config(t, customersTable)
	fix := `GRANT USAGE ON SCHEMA "crm" TO ` + quoted

	report := check(t, cfg)
	res := result(t, report, "source table crm.customers")
	if res.OK {
		t.Fatalf("source table check passed without USAGE on its schema under snapshot: initial: %q", res.Detail)
	}
	if want := "lacks USAGE on schema crm"; !strings.Contains(res.Detail, want) {
		t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
	}
	if !strings.Contains(res.Fix, fix) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, fix)
	}
	if report.OK() {
		t.Error("report is OK although the initial copy cannot read the source table")
	}

	// Without the initial copy, streaming works, but adding the table to a publication
	// later would not.
	cfg.Source.Snapshot = "never"
	res = result(t, check(t, cfg), "source table crm.customers")
	if !res.OK || !res.Warn {
		t.Errorf("snapshot never: OK %v, warning %v, detail %q; want a warning", res.OK, res.Warn, res.Detail)
	}
	if !strings.Contains(res.Fix, fix) {
		t.Errorf("snapshot never: fix = %q, want it to contain %q", res.Fix, fix)
	}

	cfg.Source.Snapshot = "initial"
	execSQL(t, superuserURL, fix)
	res = result(t, check(t, cfg), "source table crm.customers")
	if !res.OK || res.Warn {
		t.Errorf("after the grant: OK %v, warning %v, detail %q; want a clean pass", res.OK, res.Warn, res.Detail)
	}
}

func TestCheckPartitionedTargetWithoutDefault(t *testing.T) {
	d := newDatabases(t, `CREATE SCHEMA crm;
CREATE TABLE crm.events (id int, region int, body text, PRIMARY KEY (id, region));`, `CREATE SCHEMA billing;
CREATE TABLE billing.events (id int, region int, body text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE billing.events_1 PARTITION OF billing.events FOR VALUES IN (1);`)
	cfg := d.config(t, "tables: [{source: crm.events, target: billing.events}]\n")

	res := result(t, check(t, cfg), "target table billing.events")
	if !res.OK || !res.Warn {
		t.Fatalf("OK = %v, Warn = %v, want a warning; detail %q", res.OK, res.Warn, res.Detail)
	}
	for _, want := range []string{"billing.events has no DEFAULT partition", "initial copy (snapshot: initial) stops"} {
		if !strings.Contains(res.Detail, want) {
			t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
		}
	}
	create := `CREATE TABLE "billing"."events_default" PARTITION OF "billing"."events" DEFAULT`
	if !strings.Contains(res.Fix, create) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, create)
	}

	// A partition that is partitioned itself needs its own DEFAULT partition.
	execSQL(t, d.targetURL, create+` PARTITION BY LIST (id);
CREATE TABLE billing.events_default_1 PARTITION OF billing.events_default FOR VALUES IN (1);`)
	res = result(t, check(t, cfg), "target table billing.events")
	if !strings.Contains(res.Detail, "billing.events_default has no DEFAULT partition") {
		t.Errorf("detail = %q, want it to name the partitioned partition billing.events_default", res.Detail)
	}
	if strings.Contains(res.Detail, "billing.events,") || strings.Contains(res.Detail, "billing.events has") {
		t.Errorf("detail = %q names billing.events, which has a DEFAULT partition now", res.Detail)
	}

	execSQL(t, d.targetURL, "CREATE TABLE billing.events_default_rest PARTITION OF billing.events_default DEFAULT")
	assertNoWarnings(t, check(t, cfg))
}

// unwritableDir returns a directory in which this process cannot create a file: a
// read-only temporary directory, or /sys when the process is root and ignores the mode.
func unwritableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	for _, candidate := range []string{dir, "/sys"} {
		file, err := os.CreateTemp(candidate, "probe-*")
		if err != nil {
			return candidate
		}
		_ = file.Close()
		_ = os.Remove(file.Name())
	}
	t.Skip("found no directory that this process cannot write to")
	return ""
}

func TestCheckSpillDirNotWritable(t *testing.T) {
	d := newDatabases(t, sourceDDL, targetDDL)
	cfg := d.config(t, customersTable)
	dir := unwritableDir(t)
	cfg.Source.SpillDir = dir

	report := check(t, cfg)
	res := result(t, report, "spill directory")
	if res.OK {
		t.Fatalf("spill directory check passed for %s: %q", dir, res.Detail)
	}
	if want := "cannot create a file in " + dir + ", source.spill_dir"; !strings.Contains(res.Detail, want) {
		t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
	}
	if want := "set source.spill_dir to a writable directory"; !strings.Contains(res.Fix, want) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
	}
	if report.OK() {
		t.Error("report is OK with an unwritable spill directory")
	}

	writable := t.TempDir()
	cfg.Source.SpillDir = writable
	res = result(t, check(t, cfg), "spill directory")
	if !res.OK || res.Detail != writable+" is writable" {
		t.Errorf("writable directory: OK %v, detail %q; want a pass", res.OK, res.Detail)
	}
	if entries, err := os.ReadDir(writable); err != nil || len(entries) != 0 {
		t.Errorf("spill directory after check holds %v (%v), want it empty", entries, err)
	}

	// Without streaming, changesync writes no spill files.
	cfg.Source.SpillDir = dir
	cfg.Source.Streaming = false
	for _, r := range check(t, cfg).Results {
		if r.Name == "spill directory" {
			t.Errorf("report checks the spill directory without streaming: %q", r.Detail)
		}
	}
}
