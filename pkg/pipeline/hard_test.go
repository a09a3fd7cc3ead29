package pipeline_test

import (
	"cmp"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/pgtest"
)

// bigValue is an SQL expression for a text value of about 40 kB that does not compress.
// With STORAGE EXTERNAL it is stored out of line, so pgoutput sends it as unchanged when
// an UPDATE does not touch it.
const bigValue = `(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 1200) g)`

func TestSyncUnchangedToast(t *testing.T) {
	for _, identity := range []string{"DEFAULT", "FULL"} {
		t.Run(identity, func(t *testing.T) {
			ddl := `CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
				ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
				ALTER TABLE docs REPLICA IDENTITY ` + identity
			e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "docs")}}})
			e.exec(`INSERT INTO docs VALUES (1, 'a', ` + bigValue + `), (2, 'b', ` + bigValue + `)`)
			e.sync()
			e.exec(`UPDATE docs SET title = 'a2' WHERE id = 1`)
			// The target lost row 2, so the update must insert it: with FULL the old tuple
			// has the body, with DEFAULT the insert cannot be complete.
			e.execOn(e.dst, `DELETE FROM docs WHERE id = 2`)
			e.exec(`UPDATE docs SET title = 'b2' WHERE id = 2`)
			e.sync()

			e.wantRows("SELECT id, title, length(body) FROM docs WHERE id = 1", "1 | a2 | 38400")
			e.wantRows(`SELECT string_agg(k, ',') FROM changesync.sync_log l
				JOIN changesync.change_events c ON c.id = l.change_event_id, jsonb_object_keys(l.diff) k
				WHERE c.table_name = 'public.docs' AND c.row_key = '1' AND c.change_type = 'update'`, "title")
			e.wantRows(`SELECT count(*) FROM changesync.change_events WHERE row_key = '1'
				AND change_type = 'update' AND new_data ? 'body'`, "0")
			if identity == "FULL" {
				e.sameRows("SELECT * FROM docs ORDER BY id")
			} else {
				e.wantRows(`SELECT status, error LIKE '%unchanged TOAST%' FROM changesync.change_events
					WHERE row_key = '2' AND change_type = 'update'`, "failed | t")
			}
		})
	}
}

func TestSyncInsertThenPartialUpdatesInOneTransaction(t *testing.T) {
	ddl := `CREATE TABLE docs (id int PRIMARY KEY, title text, body text, n int);
		ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "docs")}}})
	e.exec(`BEGIN;
		INSERT INTO docs VALUES (1, 'a', ` + bigValue + `, 0);
		UPDATE docs SET title = 'a2' WHERE id = 1;
		UPDATE docs SET n = 1 WHERE id = 1;
		COMMIT;
		INSERT INTO docs VALUES (2, 'b', ` + bigValue + `, 0);
		UPDATE docs SET n = 2 WHERE id = 2;
		UPDATE docs SET title = 'b2' WHERE id = 2`)
	e.sync()
	e.sameRows("SELECT * FROM docs ORDER BY id")
}

func TestSyncKeyChanges(t *testing.T) {
	ddl := `CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b))`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "pairs")}}})
	e.exec(`INSERT INTO pairs VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z')`)
	e.sync()
	e.exec(`UPDATE pairs SET b = 3 WHERE a = 1 AND b = 1;
		BEGIN;
		UPDATE pairs SET a = 9 WHERE a = 1 AND b = 2;
		UPDATE pairs SET a = 1 WHERE a = 2 AND b = 1;
		UPDATE pairs SET a = 2 WHERE a = 9 AND b = 2;
		COMMIT;
		UPDATE pairs SET a = a + 10, v = v || '!'`)
	e.sync()
	e.sameRows("SELECT * FROM pairs ORDER BY a, b")
	e.wantRows("SELECT count(*) FROM pairs", "3")
}

func TestSyncSameRowManyTimesInOneTransaction(t *testing.T) {
	ddl := `CREATE TABLE c (id int PRIMARY KEY, v int)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "c")}}})
	e.exec(`BEGIN;
		INSERT INTO c VALUES (1, 1);
		UPDATE c SET v = 2 WHERE id = 1;
		DELETE FROM c WHERE id = 1;
		INSERT INTO c VALUES (1, 3);
		UPDATE c SET v = v + 1 WHERE id = 1;
		COMMIT`)
	e.sync()
	e.wantRows("SELECT * FROM c", "1 | 4")
	e.wantRows(`SELECT string_agg(change_type::text, ',' ORDER BY seq) FROM changesync.change_events
		WHERE table_name = 'public.c'`, "insert,update,delete,insert,update")
}

func TestSyncQuotedIdentifiers(t *testing.T) {
	ddl := `CREATE SCHEMA "Sales.EU";
		CREATE TABLE "Sales.EU"."Order Lines" ("Id" int PRIMARY KEY, "select" text, "unit-price" numeric, "Note" text);
		CREATE TABLE "Sales.EU"."order lines" (id int PRIMARY KEY, "select" text);
		CREATE TABLE public."Order Lines" ("Id" int PRIMARY KEY, "select" text, "unit-price" numeric, "Note" text)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{
		{Source: table("Sales.EU", "Order Lines")},
		{Source: table("Sales.EU", "order lines")},
		{Source: table("public", "Order Lines")},
	}})
	e.exec(`INSERT INTO "Sales.EU"."Order Lines" VALUES (1, 'a', 1.5, 'N');
		INSERT INTO "Sales.EU"."order lines" VALUES (1, 'lower');
		INSERT INTO public."Order Lines" VALUES (1, 'public', 2, NULL);
		UPDATE "Sales.EU"."Order Lines" SET "unit-price" = 3, "select" = 'b' WHERE "Id" = 1;
		UPDATE "Sales.EU"."Order Lines" SET "Id" = 2 WHERE "Id" = 1;
		DELETE FROM "Sales.EU"."order lines"`)
	e.sync()
	e.sameRows(`SELECT * FROM "Sales.EU"."Order Lines"`)
	e.sameRows(`SELECT * FROM "Sales.EU"."order lines"`)
	e.sameRows(`SELECT * FROM public."Order Lines"`)
}

func TestSyncInterleavedTransactionsFollowCommitOrder(t *testing.T) {
	ddl := `CREATE TABLE c (id int PRIMARY KEY, v text)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "c")}}})
	e.exec(`INSERT INTO c VALUES (1, 'start')`)
	e.sync()

	// The first transaction starts earlier and writes first, but commits last.
	early := checkingConn(t, e.srcURL)
	e.execOn(early, `BEGIN; INSERT INTO c VALUES (2, 'early'); UPDATE c SET v = 'early' WHERE id = 1`)
	// It locks row 1, so the later transaction touches another row.
	e.exec(`INSERT INTO c VALUES (3, 'late'); UPDATE c SET v = 'late' WHERE id = 3`)
	e.execOn(early, `UPDATE c SET v = 'early-again' WHERE id = 3; COMMIT`)
	e.sync()
	e.sameRows("SELECT * FROM c ORDER BY id")
	e.wantRows("SELECT v FROM c WHERE id = 3", "early-again")
}

func TestSyncTruncateCascadeAndRestartIdentity(t *testing.T) {
	ddl := `CREATE TABLE parent (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{
		{Source: table("public", "parent"), Truncate: "apply"},
		{Source: table("public", "child"), Truncate: "apply"},
	}})
	e.exec(`INSERT INTO parent (v) VALUES ('a'), ('b'); INSERT INTO child VALUES (1, 1)`)
	e.sync()
	e.exec(`TRUNCATE parent RESTART IDENTITY CASCADE; INSERT INTO parent (v) VALUES ('c')`)
	e.sync()
	e.sameRows("SELECT * FROM parent ORDER BY id")
	e.sameRows("SELECT * FROM child ORDER BY id")
	got := e.targetRows(`SELECT string_agg(table_name, ',' ORDER BY table_name) FROM changesync.change_events
		WHERE change_type = 'truncate' AND status = 'synced'`)
	if len(got) != 1 || got[0] != "public.child,public.parent" {
		t.Errorf("synced truncates = %q, want one per table", got)
	}
}

func TestSyncTruncateHeldByDefault(t *testing.T) {
	ddl := `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{
		{Source: table("public", "a"), Truncate: "hold"},
		{Source: table("public", "b"), Truncate: "ignore"},
	}})
	e.exec(`INSERT INTO a VALUES (1); INSERT INTO b VALUES (1)`)
	e.sync()
	e.exec(`TRUNCATE a, b`)
	e.sync()
	e.wantRows("SELECT count(*) FROM a", "1")
	e.wantRows("SELECT count(*) FROM b", "1")
	e.wantRows(`SELECT table_name, status FROM changesync.change_events WHERE change_type = 'truncate'
		ORDER BY table_name`, "public.a | held", "public.b | skipped")
}

func TestSyncIgnoresPublishedTablesNotConfigured(t *testing.T) {
	ddl := `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE extra (id int PRIMARY KEY)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "a")}}})
	e.exec(`ALTER PUBLICATION cs_pub ADD TABLE extra; INSERT INTO extra VALUES (1); INSERT INTO a VALUES (1)`)
	e.sync()
	e.wantRows("SELECT count(*) FROM extra", "0")
	e.wantRows("SELECT count(*) FROM a", "1")
	e.wantRows("SELECT count(*) FROM changesync.change_events WHERE table_name = 'public.extra'", "0")
}

func TestSyncSourceColumnsChangeMidStream(t *testing.T) {
	ddl := `CREATE TABLE p (id int PRIMARY KEY, a text, b int)`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "p")}}})
	e.exec(`INSERT INTO p VALUES (1, 'x', 1)`)
	e.sync()
	// Dropping a column shifts the positions of the ones after it, and a retyped column
	// keeps its name. A new column the target lacks is not written.
	e.execOn(e.dst, `ALTER TABLE p ALTER COLUMN b TYPE bigint`)
	e.exec(`ALTER TABLE p DROP COLUMN a; UPDATE p SET b = 2 WHERE id = 1;
		ALTER TABLE p ALTER COLUMN b TYPE bigint; UPDATE p SET b = 3000000000 WHERE id = 1`)
	e.exec(`ALTER TABLE p ADD COLUMN c text; INSERT INTO p VALUES (2, 5, 'new')`)
	e.sync()
	e.wantRows("SELECT id, a, b FROM p ORDER BY id", "1 | x | 3000000000", "2 | ∅ | 5")
	failed := e.targetRows(`SELECT row_key || ' ' || status FROM changesync.change_events
		WHERE table_name = 'public.p' AND status <> 'synced'`)
	if len(failed) > 0 {
		t.Errorf("changes not synced: %s", strings.Join(failed, "; "))
	}
}

func TestSyncPartitionedTable(t *testing.T) {
	ddl := `CREATE TABLE m (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
		CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
		CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
		CREATE TABLE m_ap PARTITION OF m FOR VALUES IN ('ap')`
	e := startSync(t, syncSetup{
		sourceDDL: ddl + `; INSERT INTO m VALUES (1, 'eu', 'before the slot')`,
		// note is a column of the target only, which an UPDATE keeps and an INSERT resets.
		targetDDL: `CREATE TABLE m (id int, region text, v text, note text DEFAULT 'new',
			PRIMARY KEY (id, region))`,
		specs:    []apply.TableSpec{{Source: table("public", "m")}},
		snapshot: true,
	})
	e.exec(`INSERT INTO m VALUES (2, 'eu', 'a'), (3, 'us', 'b')`)
	e.sync()
	e.execOn(e.dst, `UPDATE m SET note = 'kept'`)

	e.exec(`UPDATE m SET v = 'a2' WHERE id = 2;
		UPDATE m SET region = 'us' WHERE id = 2;
		CREATE TABLE m_asia PARTITION OF m FOR VALUES IN ('asia');
		INSERT INTO m VALUES (4, 'asia', 'new partition');
		UPDATE m SET region = 'asia', v = 'moved and changed' WHERE id = 1;
		DELETE FROM m WHERE id = 3`)
	// The first change of a partition in a session comes after a Relation message.
	e.exec(`UPDATE m SET region = 'ap' WHERE id = 2`)
	e.sync()
	e.sameRows("SELECT id, region, v FROM m ORDER BY id, region")
	e.wantRows("SELECT id, region, note FROM m ORDER BY id",
		"1 | asia | kept", "2 | ap | kept", "4 | asia | new")
	e.wantRows("SELECT DISTINCT table_name FROM changesync.change_events WHERE table_name LIKE 'public.m%'", "public.m")
	// Each row moved between partitions is one UPDATE from its old key to its new one.
	e.wantRows(`SELECT change_type, row_key, old_data, new_data FROM changesync.change_events
		WHERE table_name = 'public.m' AND change_type <> 'insert' ORDER BY source_lsn, seq`,
		`update | ["2","eu"] | ∅ | {"v": "a2", "id": "2", "region": "eu"}`,
		`update | ["2","us"] | {"id": "2", "region": "eu"} | {"v": "a2", "id": "2", "region": "us"}`,
		`update | ["1","asia"] | {"id": "1", "region": "eu"} | {"v": "moved and changed", "id": "1", "region": "asia"}`,
		`delete | ["3","us"] | {"id": "3", "region": "us"} | ∅`,
		`update | ["2","ap"] | {"id": "2", "region": "us"} | {"v": "a2", "id": "2", "region": "ap"}`)
}

func TestSyncVeryLargeValue(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL:          "CREATE TABLE blobs (id int PRIMARY KEY, body text, data bytea, edge text, n int)",
		specs:              []apply.TableSpec{{Source: table("public", "blobs")}},
		auditMaxValueBytes: 1 << 20,
	})
	// About 24 MB of text and 12 MB of bytea (24 MB in text form) in one row, and a text of
	// exactly the audit's value limit.
	e.exec(`INSERT INTO blobs SELECT 1, string_agg(md5(g::text), ''), decode(string_agg(md5(g::text), ''), 'hex'),
		repeat('e', 1048576), 0
		FROM generate_series(1, 750000) g`)
	inserted := strings.Split(rows(t, e.src, `SELECT `+auditDigestSQL("body")+`, `+auditDigestSQL("data::text")+`,
		md5(body), md5(data::text), md5(edge) FROM blobs`)[0], " | ")
	digestBody, digestData, md5Body, md5Data, md5Edge := inserted[0], inserted[1], inserted[2], inserted[3], inserted[4]
	e.exec(`UPDATE blobs SET n = 1`)
	e.exec(`UPDATE blobs SET body = body || 'x'`)
	updated := strings.Split(rows(t, e.src, `SELECT `+auditDigestSQL("body")+`, md5(body) FROM blobs`)[0], " | ")
	digestNewBody, md5NewBody := updated[0], updated[1]
	e.syncWithin(5 * time.Minute)
	e.sameRows("SELECT id, md5(body), length(body), md5(data), md5(edge), n FROM blobs")

	// change_events stores the values above the limit as digests, the others whole.
	// The values are clipped, so that a failure does not print megabytes.
	e.wantRows(`SELECT left((new_data->'body')::text, 200), left((new_data->'data')::text, 200)
		FROM changesync.change_events WHERE table_name = 'public.blobs' AND change_type = 'insert'`,
		digestBody+" | "+digestData)
	e.wantRows(`SELECT jsonb_typeof(new_data->'edge'), md5(new_data->>'edge'), new_data->>'id', new_data->>'n'
		FROM changesync.change_events WHERE table_name = 'public.blobs' AND change_type = 'insert'`,
		"string | "+md5Edge+" | 1 | 0")
	e.wantRows(`SELECT left((new_data->'body')::text, 200) FROM changesync.change_events
		WHERE table_name = 'public.blobs' AND change_type = 'update' AND new_data ? 'body'`, digestNewBody)

	// sync_log keeps the whole values, because undo writes them back.
	e.wantRows(`SELECT md5(l.diff->'body'->>'new'), md5(l.diff->'data'->>'new'), md5(l.diff->'edge'->>'new')
		FROM changesync.sync_log l JOIN changesync.change_events c ON c.id = l.change_event_id
		WHERE c.table_name = 'public.blobs' AND c.change_type = 'insert'`, md5Body+" | "+md5Data+" | "+md5Edge)
	e.wantRows(`SELECT md5(l.diff->'body'->>'old'), md5(l.diff->'body'->>'new')
		FROM changesync.sync_log l JOIN changesync.change_events c ON c.id = l.change_event_id
		WHERE c.table_name = 'public.blobs' AND c.change_type = 'update' AND l.diff ? 'body'`,
		md5Body+" | "+md5NewBody)
}

// auditDigestSQL returns an SQL expression for the digest that change_events stores of
// a long text value: the SHA-256 and the length in bytes of its UTF-8 text.
func auditDigestSQL(value string) string {
	return fmt.Sprintf(`jsonb_build_object('sha256', encode(sha256(convert_to(%[1]s, 'UTF8')), 'hex'),
		'bytes', octet_length(convert_to(%[1]s, 'UTF8')))`, value)
}

func TestSyncSurvivesDroppedConnections(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: "CREATE TABLE c (id int PRIMARY KEY, v int)",
		specs:     []apply.TableSpec{{Source: table("public", "c")}},
	})
	e.exec(`INSERT INTO c SELECT g, 0 FROM generate_series(1, 50) g`)
	e.sync()
	admin := checkingConn(t, pgtest.Server(t).URL("postgres"))
	for round := range 6 {
		for i := range 20 {
			e.exec(fmt.Sprintf(`UPDATE c SET v = v + 1 WHERE id = %d`, (round*20+i)%50+1))
		}
		// Alternate between the replication connection and the target connections.
		kill := fmt.Sprintf(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = '%s'`, e.slot())
		if round%2 == 1 {
			kill = fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = '%s' AND backend_type = 'client backend' AND pid <> %d`,
				e.targetRows("SELECT current_database()")[0], e.dst.PgConn().PID())
		}
		e.execOn(admin, kill)
	}
	e.sync()
	e.sameRows("SELECT * FROM c ORDER BY id")
	e.wantRows(`SELECT count(*), count(DISTINCT (source_lsn, seq)) FROM changesync.change_events
		WHERE table_name = 'public.c'`, "170 | 170")
}

func TestSyncFullIdentityWithoutKey(t *testing.T) {
	ddl := `CREATE TABLE log (who text, what text, n int, doc json);
		ALTER TABLE log REPLICA IDENTITY FULL`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "log")}}})
	e.exec(`INSERT INTO log VALUES ('a', 'x', 1, '{"k": 1}'), ('a', 'x', 1, '{"k": 1}'), ('a', 'x', 1, '{"k": 1}'),
		(NULL, 'y', NULL, NULL), (NULL, 'y', NULL, NULL)`)
	e.sync()
	// Each statement changes one of several identical rows; ctid picks which one.
	e.exec(`UPDATE log SET n = 2 WHERE ctid = (SELECT ctid FROM log WHERE who = 'a' LIMIT 1);
		DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE who IS NULL LIMIT 1);
		UPDATE log SET what = 'z' WHERE ctid = (SELECT ctid FROM log WHERE who IS NULL LIMIT 1)`)
	e.sync()
	e.sameRows("SELECT who, what, n, doc::text FROM log ORDER BY who, what, n, doc::text")
	e.wantRows("SELECT count(*) FROM log", "4")
}

func TestSyncKeylessRowMissingOnTarget(t *testing.T) {
	const reason = "%s found no row of target table public.log whose mapped columns all equal the change's " +
		"old values (on_missing_row: %s), so nothing was written. The row is missing on the target or " +
		"differs there, and without a key changesync cannot tell which%s. Compare the target table " +
		"with the source and fix the row by hand."
	const notInserted = ", so no row is inserted in its place"
	tests := []struct {
		policy string // apply.on_missing_row, where "" keeps the default, insert
		status string
	}{
		{"", "failed"},
		{apply.MissingRowFail, "failed"},
		{apply.MissingRowSkip, "skipped"},
	}
	for _, tt := range tests {
		policy := cmp.Or(tt.policy, apply.MissingRowInsert)
		t.Run(policy, func(t *testing.T) {
			ddl := `CREATE TABLE log (who text, what text, n int);
				ALTER TABLE log REPLICA IDENTITY FULL`
			e := startSync(t, syncSetup{
				sourceDDL: ddl, policy: apply.Policy{OnMissingRow: tt.policy},
				specs: []apply.TableSpec{{Source: table("public", "log")}},
			})
			e.exec(`INSERT INTO log VALUES ('a', 'x', 1), ('b', 'y', 2), ('d', 'w', 4), ('d', 'w', 4)`)
			e.sync()

			// Behind changesync's back, the target loses row a and one of the two rows d.
			e.execOn(e.dst, `DELETE FROM log WHERE who = 'a';
				DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE who = 'd' LIMIT 1)`)
			// The first UPDATE changes no value, so it has nothing to write but still finds
			// no row. Of the two DELETEs of d, the second finds no row. Row e is inserted
			// and updated in one transaction, and row b changes afterwards. The changes of e
			// and b are synced.
			e.exec(`UPDATE log SET n = n WHERE who = 'a';
				UPDATE log SET n = 10 WHERE who = 'a';
				DELETE FROM log WHERE who = 'a';
				DELETE FROM log WHERE who = 'd';
				BEGIN;
				INSERT INTO log VALUES ('e', 'v', 5);
				UPDATE log SET n = 50 WHERE who = 'e';
				COMMIT;
				UPDATE log SET n = 20 WHERE who = 'b'`)
			e.sync()

			e.wantRows("SELECT who, what, n FROM log ORDER BY who, what, n", "b | y | 20", "e | v | 50")
			e.wantRows(`SELECT change_type, status FROM changesync.change_events
				WHERE table_name = 'public.log' AND change_type <> 'insert' ORDER BY source_lsn, seq`,
				"update | "+tt.status, "update | "+tt.status, "delete | "+tt.status,
				"delete | synced", "delete | "+tt.status, "update | synced", "update | synced")

			// A failed change has its reason in error, a skipped one in decision_reason.
			audit := func(op, suffix string) string {
				text := fmt.Sprintf(reason, op, policy, suffix)
				if tt.status == "skipped" {
					return "∅ | " + text + " | changesync:apply"
				}
				return text + " | no validation rules configured | changesync:default"
			}
			e.wantRows(`SELECT error, decision_reason, decided_by FROM changesync.change_events
				WHERE table_name = 'public.log' AND status <> 'synced' ORDER BY source_lsn, seq`,
				audit("UPDATE", notInserted), audit("UPDATE", notInserted), audit("DELETE", ""),
				audit("DELETE", ""))
			e.wantRows(`SELECT count(*) FROM changesync.sync_log l
				JOIN changesync.change_events c ON c.id = l.change_event_id
				WHERE c.table_name = 'public.log' AND c.status <> 'synced'`, "0")
		})
	}
}
