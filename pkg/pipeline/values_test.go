package pipeline_test

import (
	"testing"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
)

func table(schema, name string) change.TableName { return change.TableName{Schema: schema, Name: name} }

// typesDDL is a table with a column of each kind of value whose text form is easy to
// get wrong. The types are created in another order on the target, so their OIDs differ.
const typesSourceDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);` + typesTableDDL

const typesTargetDDL = `
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE filler AS ENUM ('x');
CREATE TYPE mood AS ENUM ('sad', 'ok');` + typesTableDDL

const typesTableDDL = `
CREATE TABLE vals (
	id      int PRIMARY KEY,
	t       text,
	num     numeric,
	num_p   numeric(40, 20),
	f4      float4,
	f8      float8,
	ts      timestamp,
	tstz    timestamptz,
	d       date,
	tm      timetz,
	iv      interval,
	b       bytea,
	j       json,
	jb      jsonb,
	u       uuid,
	ip      inet,
	net     cidr,
	r       int4range,
	tr      tstzrange,
	m       money,
	bits    bit(8),
	vbits   varbit,
	ta      text[],
	ia      int[],
	e       mood,
	ea      mood[],
	dom     posint,
	comp    pair
)`

func TestSyncValuesRoundTrip(t *testing.T) {
	e := startSync(t, syncSetup{
		sourceDDL: typesSourceDDL, targetDDL: typesTargetDDL,
		specs: []apply.TableSpec{{Source: table("public", "vals")}},
	})
	e.exec(`
INSERT INTO vals VALUES
(1, '', 'NaN', 12345678901234567890.12345678901234567890, 3.4028235e38, 1.7976931348623157e308,
 'infinity', '-infinity', '4713-01-01 BC', '23:59:59.999999+14:59', '1 year -2 mons 3 days 04:05:06.789',
 '\x00ff5c27', '{"a": null, "b": "null", "c": [1, 2.50]}', '{"z": 1, "a": {"k": "NULL"}}',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1/64', '10.1.0.0/16', '[1,5)', '[2020-01-01 00:00+05:30,)',
 '-12.34', B'10100101', B'1', '{NULL,"NULL","","a,b","q\"uote","back\\slash"}', '[0:1][1:2]={{1,NULL},{3,4}}',
 'ok', '{sad,ok}', 7, '(1,"x, y")'),
(2, 'NULL', 'Infinity', -0.00000000000000000001, 1.17549435e-38, 4.9e-324,
 '294276-12-31 23:59:59.999999', '2000-02-29 12:00:00.000001-03:30', 'infinity', '00:00+00', '-178000000 years',
 '', 'null', 'null', '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::/0', 'empty', '(,)',
 '0', B'00000000', B'', '{}', '{}', 'sad', '{}', 1, '(,)'),
(3, NULL, '-Infinity', NULL, 'NaN', '-Infinity', NULL, NULL, '-infinity', NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{a,b},{c,NULL}}', NULL, NULL, '{NULL}', NULL, NULL);
UPDATE vals SET f4 = 0.1, f8 = 0.1, num = 0.1000 WHERE id = 1;
UPDATE vals SET t = NULL, jb = '"NULL"' WHERE id = 2;
UPDATE vals SET t = '', ta = '{""}' WHERE id = 3;`)
	e.sync()
	e.sameRows("SELECT * FROM vals ORDER BY id")

	// The same row changed again keeps every column equal, and the diff of the audit
	// names the changed columns only.
	e.exec(`UPDATE vals SET f8 = -0.0, iv = '0', b = '\x01' WHERE id = 2`)
	e.sync()
	e.sameRows("SELECT * FROM vals ORDER BY id")
	e.wantRows(`SELECT string_agg(k, ',' ORDER BY k) FROM changesync.sync_log l, jsonb_object_keys(l.diff) k
		WHERE l.source_id = '2' AND l.synced_at = (SELECT max(synced_at) FROM changesync.sync_log WHERE source_id = '2')`,
		"b,f8,iv")
}

func TestSyncEnumValueAddedMidStream(t *testing.T) {
	ddl := `CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE TABLE moods (id int PRIMARY KEY, m mood, ms mood[])`
	e := startSync(t, syncSetup{sourceDDL: ddl, specs: []apply.TableSpec{{Source: table("public", "moods")}}})
	e.exec(`INSERT INTO moods VALUES (1, 'ok', '{sad}')`)
	e.sync()
	e.execOn(e.dst, `ALTER TYPE mood ADD VALUE 'happy'`)
	e.exec(`ALTER TYPE mood ADD VALUE 'happy'`)
	e.exec(`INSERT INTO moods VALUES (2, 'happy', '{happy,ok}'); UPDATE moods SET m = 'happy' WHERE id = 1`)
	e.sync()
	e.sameRows("SELECT * FROM moods ORDER BY id")
}
