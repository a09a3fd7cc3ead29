package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/capture"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/pgtest"
)

// sourceDDL and targetDDL are the healthy reference setup: customers of a CRM database
// synced into a billing database with one renamed and one excluded column.
const (
	sourceDDL = `CREATE SCHEMA crm;
CREATE TABLE crm.customers (id int PRIMARY KEY, name text NOT NULL, address text, zip text,
	password_hash text);`
	targetDDL = `CREATE SCHEMA billing;
CREATE TABLE billing.customers (id bigint PRIMARY KEY, name text, billing_address text, zip text);`
	customersTable = `
tables:
  - source: crm.customers
    target: billing.customers
    columns: {address: billing_address}
    exclude: [password_hash]
`
)

// databases is a source and a target database of the test cluster.
type databases struct {
	sourceURL, targetURL string
	slot                 string // a slot name of the source database's own, as slots are cluster-wide
}

func newDatabases(t *testing.T, sourceSQL, targetSQL string) databases {
	t.Helper()
	d := databases{sourceURL: pgtest.NewDB(t), targetURL: pgtest.NewDB(t)}
	d.slot = databaseName(t, d.sourceURL)
	execSQL(t, d.sourceURL, sourceSQL)
	execSQL(t, d.targetURL, targetSQL)
	return d
}

// config loads a configuration whose URLs and slot are those of the test databases.
func (d databases) config(t *testing.T, yaml string) *config.Config {
	t.Helper()
	env := map[string]string{config.EnvSourceURL: d.sourceURL, config.EnvTargetURL: d.targetURL}
	cfg, err := config.Parse([]byte("source: {slot: "+d.slot+", publication: changesync}\n"+yaml), func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		t.Fatalf("load configuration: %v", err)
	}
	return cfg
}

func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	if sql == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Detail != "" {
			err = fmt.Errorf("%w (%s)", err, pgErr.Detail)
		}
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func databaseName(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func check(t *testing.T, cfg *config.Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	report := Check(ctx, cfg)
	var out bytes.Buffer
	if err := report.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())
	return report
}

// result returns the result of the named check, failing the test when it is missing.
func result(t *testing.T, r *Report, name string) Result {
	t.Helper()
	for _, res := range r.Results {
		if res.Name == name {
			return res
		}
	}
	t.Fatalf("report has no check %q", name)
	return Result{}
}

func TestCheckHealthySetup(t *testing.T) {
	d := newDatabases(t, sourceDDL, targetDDL)
	report := check(t, d.config(t, customersTable))

	if !report.OK() {
		t.Fatal("report is not OK for a healthy setup")
	}
	for _, name := range []string{
		"source connection", "source wal_level", "source replication role",
		"source replication connection", "source slots and WAL senders", "source table crm.customers",
		"publication changesync", "slot " + d.slot, "target connection", "target table billing.customers",
		"metadata schema changesync",
	} {
		res := result(t, report, name)
		if !res.OK || res.Warn {
			t.Errorf("%s: OK %v, warning %v, detail %q; want a clean pass", name, res.OK, res.Warn, res.Detail)
		}
	}
	if got := result(t, report, "slot "+d.slot).Detail; !strings.Contains(got, "does not exist yet") {
		t.Errorf("slot detail = %q, want it to say the slot does not exist yet", got)
	}
	if got := result(t, report, "target table billing.customers").Detail; got != "4 mapped columns" {
		t.Errorf("target table detail = %q, want 4 mapped columns", got)
	}
}

func TestCheckExistingPublicationAndSlot(t *testing.T) {
	d := newDatabases(t, sourceDDL+"CREATE TABLE crm.orders (id int PRIMARY KEY);"+
		"CREATE PUBLICATION changesync FOR TABLE crm.customers;", targetDDL+
		"CREATE TABLE billing.orders (id int PRIMARY KEY);")
	execSQL(t, d.sourceURL, "SELECT pg_create_logical_replication_slot('"+d.slot+"', 'pgoutput')")
	report := check(t, d.config(t, customersTable+"  - source: crm.orders\n    target: billing.orders\n"))

	if !report.OK() {
		t.Fatal("report is not OK with an existing publication and slot")
	}
	if got := result(t, report, "publication changesync").Detail; !strings.Contains(got, "adds crm.orders") {
		t.Errorf("publication detail = %q, want it to name the table changesync adds", got)
	}
	if got := result(t, report, "slot "+d.slot).Detail; !strings.Contains(got, "exists, wal_status reserved") {
		t.Errorf("slot detail = %q, want an existing reserved slot", got)
	}
}

func TestCheckSlotOfAnotherPlugin(t *testing.T) {
	d := newDatabases(t, sourceDDL, targetDDL)
	execSQL(t, d.sourceURL, "SELECT pg_create_logical_replication_slot('"+d.slot+"', 'test_decoding')")
	report := check(t, d.config(t, customersTable))

	res := result(t, report, "slot "+d.slot)
	if res.OK {
		t.Fatalf("slot check passed for a test_decoding slot: %q", res.Detail)
	}
	if !strings.Contains(res.Detail, `plugin "test_decoding"`) {
		t.Errorf("detail = %q, want it to name the plugin", res.Detail)
	}
	if !strings.Contains(res.Fix, "pg_drop_replication_slot('"+d.slot+"')") {
		t.Errorf("fix = %q, want the drop command", res.Fix)
	}
}

func TestCheckSourceIdentity(t *testing.T) {
	tests := []struct {
		name     string
		ddl      string
		key      string
		wantOK   bool
		wantFix  []string
		wantWarn bool
	}{
		{
			name:   "primary key",
			ddl:    "CREATE TABLE crm.events (id int PRIMARY KEY, body text)",
			wantOK: true,
		},
		{
			name:   "no key",
			ddl:    "CREATE TABLE crm.events (id int, body text)",
			wantOK: false,
			wantFix: []string{
				`ALTER TABLE "crm"."events" ADD PRIMARY KEY (<columns that identify a row>)`,
				`ALTER TABLE "crm"."events" REPLICA IDENTITY FULL and set tables[0].key`,
			},
		},
		{
			name:    "no key with a configured key",
			ddl:     "CREATE TABLE crm.events (id int, body text)",
			key:     "[id]",
			wantOK:  false,
			wantFix: []string{`ALTER TABLE "crm"."events" ADD PRIMARY KEY ("id")`, `ALTER TABLE "crm"."events" REPLICA IDENTITY FULL`},
		},
		{
			name:    "unique index could serve",
			ddl:     "CREATE TABLE crm.events (id int NOT NULL, body text); CREATE UNIQUE INDEX events_id ON crm.events (id)",
			wantOK:  false,
			wantFix: []string{`ALTER TABLE "crm"."events" REPLICA IDENTITY USING INDEX "events_id"`},
		},
		{
			name:   "replica identity index",
			ddl:    "CREATE TABLE crm.events (id int NOT NULL, body text); CREATE UNIQUE INDEX events_id ON crm.events (id); ALTER TABLE crm.events REPLICA IDENTITY USING INDEX events_id",
			wantOK: true,
		},
		{
			name:     "full without key",
			ddl:      "CREATE TABLE crm.events (id int, body text); ALTER TABLE crm.events REPLICA IDENTITY FULL",
			wantOK:   true,
			wantWarn: true,
			wantFix:  []string{"set tables[0].key"},
		},
		{
			name:   "full with primary key",
			ddl:    "CREATE TABLE crm.events (id int PRIMARY KEY, body text); ALTER TABLE crm.events REPLICA IDENTITY FULL",
			wantOK: true,
		},
		{
			name:   "full with configured key",
			ddl:    "CREATE TABLE crm.events (id int, body text); ALTER TABLE crm.events REPLICA IDENTITY FULL",
			key:    "[id]",
			wantOK: true,
		},
		{
			name:    "nothing",
			ddl:     "CREATE TABLE crm.events (id int PRIMARY KEY, body text); ALTER TABLE crm.events REPLICA IDENTITY NOTHING",
			wantOK:  false,
			wantFix: []string{`ALTER TABLE "crm"."events" REPLICA IDENTITY DEFAULT`},
		},
		{
			name:   "deferrable primary key",
			ddl:    "CREATE TABLE crm.events (id int PRIMARY KEY DEFERRABLE, body text)",
			wantOK: false,
			wantFix: []string{
				`ALTER TABLE "crm"."events" DROP CONSTRAINT "events_pkey", ADD PRIMARY KEY ("id")`,
				`ALTER TABLE "crm"."events" REPLICA IDENTITY FULL`,
			},
		},
		{
			name:    "missing key column",
			ddl:     "CREATE TABLE crm.events (id int PRIMARY KEY, body text)",
			key:     "[event_id]",
			wantOK:  false,
			wantFix: []string{"correct the column names in tables[0]"},
		},
		{
			name:    "key outside the replica identity",
			ddl:     "CREATE TABLE crm.events (id int PRIMARY KEY, body text NOT NULL UNIQUE)",
			key:     "[body]",
			wantOK:  false,
			wantFix: []string{`ALTER TABLE "crm"."events" REPLICA IDENTITY FULL`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := "CREATE TABLE billing.events (id int PRIMARY KEY, body text)"
			if tt.key == "[body]" {
				target = "CREATE TABLE billing.events (id int, body text PRIMARY KEY)"
			}
			d := newDatabases(t, "CREATE SCHEMA crm; "+tt.ddl, "CREATE SCHEMA billing; "+target)
			tables := "tables: [{source: crm.events, target: billing.events}]\n"
			if tt.key != "" {
				tables = "tables: [{source: crm.events, target: billing.events, key: " + tt.key + "}]\n"
			}
			report := check(t, d.config(t, tables))

			res := result(t, report, "source table crm.events")
			if res.OK != tt.wantOK {
				t.Errorf("OK = %v, want %v; detail %q", res.OK, tt.wantOK, res.Detail)
			}
			if res.Warn != tt.wantWarn {
				t.Errorf("Warn = %v, want %v; detail %q", res.Warn, tt.wantWarn, res.Detail)
			}
			for _, want := range tt.wantFix {
				if !strings.Contains(res.Fix, want) {
					t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
				}
			}
			if report.OK() != tt.wantOK {
				t.Errorf("report OK = %v, want %v", report.OK(), tt.wantOK)
			}
		})
	}
}

func TestCheckMissingTargetColumn(t *testing.T) {
	d := newDatabases(t, sourceDDL, `CREATE SCHEMA billing;
CREATE TABLE billing.customers (id bigint PRIMARY KEY, name text, billing_address text);`)
	report := check(t, d.config(t, customersTable))

	res := result(t, report, "target table billing.customers")
	if res.OK {
		t.Fatalf("target table check passed without column zip: %q", res.Detail)
	}
	if !strings.Contains(res.Detail, `has no column "zip"`) {
		t.Errorf("detail = %q, want it to name the missing column", res.Detail)
	}
	if !strings.Contains(res.Fix, `ALTER TABLE "billing"."customers" ADD COLUMN "zip" text`) {
		t.Errorf("fix = %q, want the ADD COLUMN command", res.Fix)
	}
	if report.OK() {
		t.Error("report is OK with a missing target column")
	}
}

func TestCheckMissingTargetTable(t *testing.T) {
	d := newDatabases(t, sourceDDL, "CREATE SCHEMA billing;")
	report := check(t, d.config(t, customersTable))

	res := result(t, report, "target table billing.customers")
	if res.OK {
		t.Fatalf("target table check passed without the table: %q", res.Detail)
	}
	want := `CREATE TABLE "billing"."customers" ("id" integer, "name" text, "billing_address" text, ` +
		`"zip" text, PRIMARY KEY ("id"))`
	if !strings.Contains(res.Fix, want) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
	}
}

func TestCheckTargetProblems(t *testing.T) {
	d := newDatabases(t, sourceDDL, `CREATE SCHEMA billing;
CREATE TABLE billing.customers (id bigint, name text, billing_address text, zip integer,
	region text NOT NULL, total int GENERATED ALWAYS AS (id * 2) STORED);`)
	report := check(t, d.config(t, `
tables:
  - source: crm.customers
    target: billing.customers
    columns: {address: billing_address, password_hash: total}
`))

	res := result(t, report, "target table billing.customers")
	if res.OK {
		t.Fatalf("target table check passed: %q", res.Detail)
	}
	for _, want := range []string{
		`column "total" is generated and cannot be written`,
		`has no unique index on the key ("id")`,
	} {
		if !strings.Contains(res.Detail, want) {
			t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
		}
	}
	if !strings.Contains(res.Fix, `CREATE UNIQUE INDEX ON "billing"."customers" ("id")`) {
		t.Errorf("fix = %q, want the CREATE UNIQUE INDEX command", res.Fix)
	}
}

func TestCheckTargetWarnings(t *testing.T) {
	d := newDatabases(t, sourceDDL, `CREATE SCHEMA billing;
CREATE TABLE billing.customers (id bigint PRIMARY KEY, name text, billing_address text, zip integer,
	region text NOT NULL);`)
	report := check(t, d.config(t, customersTable))

	res := result(t, report, "target table billing.customers")
	if !res.OK || !res.Warn {
		t.Fatalf("OK = %v, Warn = %v, want a warning; detail %q", res.OK, res.Warn, res.Detail)
	}
	for _, want := range []string{
		`"zip" (text into integer)`, `NOT NULL column "region" has no default`,
		"the initial copy (snapshot: initial) stops at the first such value, because the copy is all-or-nothing",
		"a streamed change with such a value is recorded as failed",
	} {
		if !strings.Contains(res.Detail, want) {
			t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
		}
	}
	if want := `ALTER TABLE "billing"."customers" ALTER COLUMN "zip" TYPE text`; !strings.Contains(res.Fix, want) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
	}
	if want := "tables[0].transform"; !strings.Contains(res.Fix, want) {
		t.Errorf("fix = %q, want it to name %q", res.Fix, want)
	}
	if !report.OK() {
		t.Error("report is not OK although the target table only warns")
	}

	// A transform computes what the column receives, so its source type is not compared.
	cfg := d.config(t, customersTable)
	cfg.Tables[0].Transform = map[string]string{"zip": "int(new.zip)"}
	res = result(t, check(t, cfg), "target table billing.customers")
	if strings.Contains(res.Detail, `"zip"`) {
		t.Errorf("detail = %q names the transformed column zip", res.Detail)
	}
}

// useSourceRole creates a login role with the given attributes, such as "REPLICATION",
// runs grants as the superuser with every %[1]s replaced by the quoted role, and points
// d.sourceURL at the role. It returns the role and the superuser's source URL.
func useSourceRole(t *testing.T, d *databases, prefix, attributes, grants string) (role, superuserURL string) {
	t.Helper()
	role = prefix + "_" + d.slot
	if len(role) > 63 {
		role = role[:63]
	}
	quoted := pgx.Identifier{role}.Sanitize()
	superuserURL = d.sourceURL
	execSQL(t, superuserURL, "CREATE ROLE "+quoted+" LOGIN "+attributes+"; "+fmt.Sprintf(grants, quoted))
	t.Cleanup(func() {
		execSQL(t, superuserURL, "DROP OWNED BY "+quoted)
		execSQL(t, pgtest.Server(t).URL("postgres"), "DROP ROLE "+quoted)
	})

	u, err := url.Parse(d.sourceURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	d.sourceURL = u.String()
	return role, superuserURL
}

func TestCheckRoleWithoutReplication(t *testing.T) {
	d := newDatabases(t, sourceDDL, targetDDL)
	role, superuserURL := useSourceRole(t, &d, "norepl", "", "GRANT SELECT ON crm.customers TO %[1]s")
	quoted := pgx.Identifier{role}.Sanitize()
	report := check(t, d.config(t, customersTable))

	res := result(t, report, "source replication role")
	if res.OK {
		t.Fatalf("replication role check passed for %s: %q", role, res.Detail)
	}
	want := "ALTER ROLE " + quoted + " REPLICATION"
	if !strings.Contains(res.Fix, want) {
		t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
	}
	if report.OK() {
		t.Error("report is OK for a role without REPLICATION")
	}

	// The first report names everything the role lacks to create the publication.
	pub := result(t, report, "publication changesync")
	if pub.OK {
		t.Errorf("publication check passed although %s may not create the publication: %q", role, pub.Detail)
	}
	database := databaseName(t, superuserURL)
	for _, want := range []string{"CREATE on database " + database, "ownership of crm.customers"} {
		if !strings.Contains(pub.Detail, want) {
			t.Errorf("publication detail = %q, want it to contain %q", pub.Detail, want)
		}
	}
	for _, want := range []string{
		`CREATE PUBLICATION "changesync" FOR TABLE "crm"."customers"`,
		"GRANT CREATE ON DATABASE " + pgx.Identifier{database}.Sanitize() + " TO " + quoted,
		`ALTER TABLE "crm"."customers" OWNER TO ` + quoted,
	} {
		if !strings.Contains(pub.Fix, want) {
			t.Errorf("publication fix = %q, want it to contain %q", pub.Fix, want)
		}
	}
	if strings.Contains(pub.Fix, "publish_via_partition_root") {
		t.Errorf("publication fix = %q sets publish_via_partition_root without a partitioned table", pub.Fix)
	}

	// With CREATE on the database, ownership of the tables is still missing.
	execSQL(t, superuserURL, "GRANT CREATE ON DATABASE "+pgx.Identifier{database}.Sanitize()+" TO "+quoted)
	pub = result(t, check(t, d.config(t, customersTable)), "publication changesync")
	if pub.OK || !strings.Contains(pub.Detail, "lacks ownership of crm.customers") {
		t.Errorf("publication: OK %v, detail %q; want a failure naming the table it does not own", pub.OK, pub.Detail)
	}
	if strings.Contains(pub.Fix, "GRANT CREATE ON DATABASE") {
		t.Errorf("publication fix = %q still grants CREATE on the database", pub.Fix)
	}
}

func TestCheckPublicationOfAnotherOwner(t *testing.T) {
	d := newDatabases(t, sourceDDL+"CREATE TABLE crm.orders (id int PRIMARY KEY);"+
		"CREATE PUBLICATION changesync FOR TABLE crm.customers;", targetDDL+
		"CREATE TABLE billing.orders (id int PRIMARY KEY);")
	role, _ := useSourceRole(t, &d, "notowner", "REPLICATION",
		"GRANT SELECT ON crm.customers, crm.orders TO %[1]s; ALTER TABLE crm.orders OWNER TO %[1]s")
	report := check(t, d.config(t, customersTable+"  - source: crm.orders\n    target: billing.orders\n"))

	pub := result(t, report, "publication changesync")
	if pub.OK {
		t.Fatalf("publication check passed although %s may not add crm.orders: %q", role, pub.Detail)
	}
	if !strings.Contains(pub.Detail, "lacks ownership of the publication") {
		t.Errorf("publication detail = %q, want it to name the ownership of the publication", pub.Detail)
	}
	if want := `ALTER PUBLICATION "changesync" ADD TABLE "crm"."orders"`; !strings.Contains(pub.Fix, want) {
		t.Errorf("publication fix = %q, want it to contain %q", pub.Fix, want)
	}
}

// partitionedDDL is a partitioned source table with one partition, and its target.
const (
	partitionedDDL = `CREATE SCHEMA crm;
CREATE TABLE crm.events (id int, at date, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE crm.events_2024 PARTITION OF crm.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');`
	partitionedTargetDDL = `CREATE SCHEMA billing;
CREATE TABLE billing.events (id int, at date, body text, PRIMARY KEY (id, at));`
	partitionedTable = "tables: [{source: crm.events, target: billing.events}]\n"
)

// assertNoWarnings fails the test for each failed or warning result of the report.
func assertNoWarnings(t *testing.T, report *Report) {
	t.Helper()
	for _, res := range report.Results {
		if !res.OK || res.Warn {
			t.Errorf("%s: OK %v, warning %v, detail %q; want a clean pass", res.Name, res.OK, res.Warn, res.Detail)
		}
	}
}

func TestCheckPartitionedPublicationFix(t *testing.T) {
	d := newDatabases(t, partitionedDDL, partitionedTargetDDL)
	_, superuserURL := useSourceRole(t, &d, "partrole", "REPLICATION",
		"GRANT USAGE ON SCHEMA crm TO %[1]s; GRANT SELECT ON crm.events TO %[1]s")
	cfg := d.config(t, partitionedTable)

	pub := result(t, check(t, cfg), "publication changesync")
	if pub.OK {
		t.Fatalf("publication check passed for a role that may not create it: %q", pub.Detail)
	}
	create := `CREATE PUBLICATION "changesync" FOR TABLE "crm"."events" WITH (publish_via_partition_root = true)`
	if !strings.Contains(pub.Fix, create) {
		t.Fatalf("publication fix = %q, want it to contain %q", pub.Fix, create)
	}

	// After the printed fix, check passes and changesync can set up with the
	// publication as it is.
	execSQL(t, superuserURL, create)
	report := check(t, cfg)
	assertNoWarnings(t, report)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reader, err := capture.New(capture.Config{
		URL: d.sourceURL, Publication: "changesync", Slot: d.slot,
		Tables: []change.TableName{{Schema: "crm", Name: "events"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Setup(ctx); err != nil {
		t.Errorf("Setup after the printed fix: %v", err)
	}
}

func TestCheckPartitionedViaRoot(t *testing.T) {
	d := newDatabases(t, partitionedDDL, partitionedTargetDDL)
	cfg := d.config(t, partitionedTable)

	// changesync creates the publication with publish_via_partition_root itself.
	assertNoWarnings(t, check(t, cfg))

	execSQL(t, d.sourceURL, "CREATE PUBLICATION changesync FOR TABLE crm.events")
	report := check(t, cfg)
	pub := result(t, report, "publication changesync")
	if pub.OK {
		t.Errorf("publication check passed without publish_via_partition_root: %q", pub.Detail)
	}
	if !strings.Contains(pub.Detail, "partitioned table crm.events") {
		t.Errorf("publication detail = %q, want it to name the partitioned table", pub.Detail)
	}
	want := `ALTER PUBLICATION "changesync" SET (publish_via_partition_root = true)`
	if !strings.Contains(pub.Fix, want) {
		t.Errorf("publication fix = %q, want it to contain %q", pub.Fix, want)
	}

	execSQL(t, d.sourceURL, want)
	assertNoWarnings(t, check(t, cfg))
}

func TestCheckExcludedKeyColumn(t *testing.T) {
	d := newDatabases(t, "CREATE SCHEMA crm; CREATE TABLE crm.hot (id int PRIMARY KEY, v text);",
		"CREATE SCHEMA billing; CREATE TABLE billing.hot (id int PRIMARY KEY, v text);")
	report := check(t, d.config(t, "tables: [{source: crm.hot, target: billing.hot, exclude: [id]}]\n"))

	res := result(t, report, "source table crm.hot")
	if res.OK {
		t.Fatalf("source table check passed with its key column excluded: %q", res.Detail)
	}
	if want := `key column "id" is excluded in tables[0].exclude`; !strings.Contains(res.Detail, want) {
		t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
	}
	for _, want := range []string{`remove "id" from tables[0].exclude`, "set tables[0].key"} {
		if !strings.Contains(res.Fix, want) {
			t.Errorf("fix = %q, want it to contain %q", res.Fix, want)
		}
	}
	if report.OK() {
		t.Error("report is OK with an excluded key column")
	}
}

func TestCheckUnreachableSource(t *testing.T) {
	d := newDatabases(t, "", targetDDL)
	d.sourceURL = "postgres://crm@localhost/crm?host=" + url.QueryEscape(t.TempDir()) + "&connect_timeout=5"
	report := check(t, d.config(t, customersTable))

	res := result(t, report, "source connection")
	if res.OK {
		t.Fatal("source connection check passed for a socket directory without a server")
	}
	if !strings.Contains(res.Detail, "the source checks did not run") {
		t.Errorf("detail = %q, want it to say the source checks did not run", res.Detail)
	}
	for _, r := range report.Results {
		if strings.HasPrefix(r.Name, "source table") {
			t.Errorf("report has %q although the source is unreachable", r.Name)
		}
	}
	target := result(t, report, "target table billing.customers")
	if !target.OK || target.Detail != "exists" {
		t.Errorf("target table: OK %v, detail %q; want it checked for existence only", target.OK, target.Detail)
	}
}

func TestCheckMetadataSchemaPrivileges(t *testing.T) {
	d := newDatabases(t, sourceDDL, targetDDL+"CREATE SCHEMA meta;")
	role := "nocreate_" + databaseName(t, d.targetURL)
	if len(role) > 63 {
		role = role[:63]
	}
	quoted := pgx.Identifier{role}.Sanitize()
	execSQL(t, d.targetURL, "CREATE ROLE "+quoted+" LOGIN; "+
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC; "+
		"GRANT USAGE ON SCHEMA billing TO "+quoted+"; "+
		"GRANT SELECT, INSERT, UPDATE, DELETE ON billing.customers TO "+quoted)
	superuserURL := d.targetURL
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

	tests := []struct {
		schema  string
		wantFix string
	}{
		{"meta", `GRANT USAGE, CREATE ON SCHEMA "meta" TO ` + quoted},
		{"changesync", `CREATE SCHEMA "changesync" AUTHORIZATION ` + quoted},
	}
	for _, tt := range tests {
		cfg := d.config(t, "target: {schema: "+tt.schema+"}\n"+customersTable)
		res := result(t, check(t, cfg), "metadata schema "+tt.schema)
		if res.OK {
			t.Errorf("schema %s: check passed for a role without CREATE: %q", tt.schema, res.Detail)
		}
		if !strings.Contains(res.Fix, tt.wantFix) {
			t.Errorf("schema %s: fix = %q, want it to contain %q", tt.schema, res.Fix, tt.wantFix)
		}
	}

	target := result(t, check(t, d.config(t, customersTable)), "target table billing.customers")
	if !target.OK {
		t.Errorf("target table check failed for a role with the table privileges: %q", target.Detail)
	}
}

func TestCheckTargetIsTheSourceTable(t *testing.T) {
	d := newDatabases(t, sourceDDL, "")
	d.targetURL = d.sourceURL + "&application_name=other"
	report := check(t, d.config(t, "tables: [{source: crm.customers}]\n"))

	res := result(t, report, "target table crm.customers")
	if res.OK {
		t.Fatalf("target table check passed for the source table itself: %q", res.Detail)
	}
	if !strings.Contains(res.Fix, "set target.url to another database") {
		t.Errorf("fix = %q, want it to point at target.url", res.Fix)
	}
}
