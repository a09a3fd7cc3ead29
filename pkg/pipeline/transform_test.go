package pipeline_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/undo"
	"github.com/datasense/changesync/pkg/validate"
)

const transformDDL = `CREATE TABLE people (id int PRIMARY KEY, first text, last text, zip text,
	city text, full_name text, qty int, per_unit int, edited_by text)`

// transformSpec returns the mapping of people with CEL transforms: a trim, an upper-case,
// a value computed from two columns, one that fails for a zero quantity, and the actor.
func transformSpec(t *testing.T) apply.TableSpec {
	t.Helper()
	people := table("public", "people")
	all, err := validate.NewTransforms([]config.Table{{Source: people, Transform: map[string]string{
		"zip":       "new.zip.trim()",
		"city":      "new.city.upperAscii()",
		"full_name": "new.first + ' ' + new.last",
		"per_unit":  "100 / new.qty",
		"edited_by": "actor",
	}}}, config.DefaultRuleCostLimit)
	if err != nil {
		t.Fatal(err)
	}
	return apply.TableSpec{Source: people, Target: people, Transform: all[people]}
}

func TestSyncTransforms(t *testing.T) {
	spec := transformSpec(t)
	e := startSync(t, syncSetup{sourceDDL: transformDDL, specs: []apply.TableSpec{spec}})
	e.exec(`INSERT INTO people VALUES (1, 'Ada', 'Lovelace', ' 12345 ', 'london', NULL, 4, NULL, NULL)`)
	e.sync()
	e.wantRows("SELECT * FROM people", "1 | Ada | Lovelace | 12345 | LONDON | Ada Lovelace | 4 | 25 | ")

	e.exec(`BEGIN;
		SELECT pg_logical_emit_message(true, 'changesync', '{"user": "alice@crm"}');
		UPDATE people SET zip = ' 54321', city = 'paris', last = 'King' WHERE id = 1;
		COMMIT`)
	e.sync()
	e.wantRows("SELECT * FROM people", "1 | Ada | King | 54321 | PARIS | Ada King | 4 | 25 | alice@crm")

	// change_events keeps the source values, and sync_log the values written.
	update := `FROM changesync.change_events c JOIN changesync.sync_log l ON l.change_event_id = c.id
		WHERE c.table_name = 'public.people' AND c.change_type = 'update'`
	e.wantRows("SELECT c.new_data->>'zip', c.new_data->>'city', c.new_data->>'full_name' "+update,
		" 54321 | paris | ∅")
	e.wantRows("SELECT l.diff->'zip'->>'old', l.diff->'zip'->>'new', l.diff->'full_name'->>'new' "+update,
		"12345 | 54321 | Ada King")
	e.wantRows("SELECT count(*) "+update+" AND l.diff ? 'first'", "0")

	e.exec(`UPDATE people SET qty = 0, city = 'rome' WHERE id = 1`)
	e.sync()
	e.wantRows(`SELECT status, error FROM changesync.change_events WHERE table_name = 'public.people'
		AND new_data->>'qty' = '0'`,
		`failed | transform of column "per_unit" failed: division by zero`)
	e.wantRows("SELECT city, qty, per_unit FROM people", "PARIS | 4 | 25")

	id := uuid.MustParse(e.targetRows("SELECT c.id " + update)[0])
	u, err := undo.New(undo.Config{Store: e.store, Tables: []apply.TableSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Execute(context.Background(), undo.Request{ChangeID: id, Reason: "test", Requestor: "t"}); err != nil {
		t.Fatalf("undo: %v", err)
	}
	e.wantRows("SELECT * FROM people", "1 | Ada | Lovelace | 12345 | LONDON | Ada Lovelace | 4 | 25 | ")
}

// The initial copy of a table with transforms writes the transformed values.
func TestSnapshotCopiesTransformedRows(t *testing.T) {
	people := table("public", "people")
	all, err := validate.NewTransforms([]config.Table{{Source: people, Transform: map[string]string{
		"zip":       "new.zip == null ? null : dyn(new.zip.trim())",
		"full_name": "new.first + ' ' + new.last",
		"edited_by": "actor == '' ? 'snapshot' : actor",
	}}}, config.DefaultRuleCostLimit)
	if err != nil {
		t.Fatal(err)
	}
	e := startSync(t, syncSetup{
		sourceDDL: transformDDL + `; INSERT INTO people VALUES
			(1, 'Ada', 'Lovelace', ' 12345 ', 'london', 'stale', 4, NULL, 'app'),
			(2, 'Grace', E'Hop\tper', NULL, NULL, NULL, NULL, NULL, NULL)`,
		targetDDL: transformDDL,
		specs:     []apply.TableSpec{{Source: people, Target: people, Transform: all[people]}},
		snapshot:  true,
	})
	e.wantRows("SELECT id, zip, full_name, edited_by FROM people ORDER BY id",
		"1 | 12345 | Ada Lovelace | snapshot", "2 | ∅ | Grace Hop\tper | snapshot")
	e.wantRows(`SELECT source_table, rows_copied FROM changesync.snapshots
		WHERE source_table = 'public.people'`, "public.people | 2")
}

// The text forms of CEL results cast to the target column types.
func TestSyncTransformTextForms(t *testing.T) {
	forms := table("public", "forms")
	all, err := validate.NewTransforms([]config.Table{{Source: forms, Transform: map[string]string{
		"at":    "timestamp('2025-03-01T12:30:00.5Z') + duration('1h')",
		"wait":  "duration('90.001s')",
		"raw":   "bytes(new.label)",
		"ratio": "double(new.n) / 4.0",
		"whole": "double(new.n) * 1e6",
		"flag":  "new.n > 1",
		"label": "null",
	}}}, config.DefaultRuleCostLimit)
	if err != nil {
		t.Fatal(err)
	}
	e := startSync(t, syncSetup{
		sourceDDL: `CREATE TABLE forms (id int PRIMARY KEY, n int, label text, at timestamptz,
			wait interval, raw bytea, ratio float8, whole bigint, flag bool)`,
		specs: []apply.TableSpec{{Source: forms, Target: forms, Transform: all[forms]}},
	})
	e.exec(`INSERT INTO forms (id, n, label) VALUES (1, 3, 'ab')`)
	e.sync()
	e.wantRows("SELECT * FROM forms",
		"1 | 3 | ∅ | 2025-03-01 13:30:00.5+00 | 00:01:30.001 | \\x6162 | 0.75 | 3000000 | t")
}
