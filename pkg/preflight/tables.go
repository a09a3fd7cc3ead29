package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// sourceTable describes a configured source table as the source catalog records it.
type sourceTable struct {
	oid      uint32
	relkind  string
	identity string // pg_class.relreplident: d default, n nothing, f full, i index
	owned    bool   // the role is the owner or a member of it, as CREATE PUBLICATION requires
	canRead  bool   // SELECT privilege, needed for the initial snapshot
	// schemaUsage is the USAGE privilege on the table's schema, without which the role
	// cannot name the table, so the initial copy and CREATE PUBLICATION fail.
	schemaUsage bool
	columns     []column
	// key is the replica identity's columns for DEFAULT and USING INDEX, or nil.
	key []string
	// primaryKey lists the primary key's columns, or is nil. A DEFERRABLE primary key
	// (deferrable) cannot serve as replica identity.
	primaryKey     []string
	primaryKeyName string
	deferrable     bool
	// candidate is a unique index that could serve as replica identity, or "".
	candidate string
}

// column is one column as the catalog describes it.
type column struct {
	name      string
	typ       string // format_type with the type modifier, such as character varying(20)
	typeName  string // format_type without it, such as character varying
	typmod    int32  // pg_attribute.atttypmod: the type modifier, -1 for none
	generated bool
	notNull   bool
	hasValue  bool // has a default or is an identity column, so an INSERT may leave it out
}

// issues collects the problems of one check so that they are reported as one result.
type issues struct {
	fails, warns []issue
}

type issue struct{ detail, fix string }

func (is *issues) fail(detail, fix string) { is.fails = append(is.fails, issue{detail, fix}) }
func (is *issues) warn(detail, fix string) { is.warns = append(is.warns, issue{detail, fix}) }

// report adds one result: failed when any problem failed, a warning when any warned.
func (is *issues) report(r *Report, name, okDetail string) {
	switch {
	case len(is.fails) > 0:
		r.fail(name, joinIssues(is.fails, func(i issue) string { return i.detail }),
			joinIssues(is.fails, func(i issue) string { return i.fix }))
	case len(is.warns) > 0:
		r.warn(name, joinIssues(is.warns, func(i issue) string { return i.detail }),
			joinIssues(is.warns, func(i issue) string { return i.fix }))
	default:
		r.pass(name, okDetail)
	}
}

func joinIssues(list []issue, field func(issue) string) string {
	var parts []string
	for _, i := range list {
		if s := field(i); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

const tableSQL = `SELECT c.oid, c.relkind::text, c.relreplident::text, pg_has_role(c.relowner, 'USAGE'),
       has_table_privilege(c.oid, 'SELECT'), has_schema_privilege(n.oid, 'USAGE')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2`

const columnsSQL = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL),
       a.atttypmod, a.attgenerated <> '', a.attnotnull, a.atthasdef OR a.attidentity <> ''
  FROM pg_attribute a
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`

// indexesSQL lists the unique indexes with their columns; expression columns (attnum 0)
// have no name and make the index unusable as a key.
const indexesSQL = `SELECT i.indexrelid::regclass::text, i.indisprimary, i.indisreplident,
       NOT i.indimmediate, i.indpred IS NULL AND i.indexprs IS NULL,
       coalesce(bool_and(a.attnotnull), false),
       array_agg(a.attname ORDER BY k.ord) FILTER (WHERE a.attname IS NOT NULL)
  FROM pg_index i
 CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid
 GROUP BY i.indexrelid, i.indisprimary, i.indisreplident, i.indimmediate, i.indpred, i.indexprs
 ORDER BY i.indisprimary DESC, i.indexrelid`

// uniqueIndex is one row of indexesSQL.
type uniqueIndex struct {
	name       string
	primary    bool
	replIdent  bool
	deferrable bool
	plain      bool // no predicate and no expressions
	notNull    bool
	columns    []string
}

// lookupTable reads a table's catalog entry, columns and unique indexes; it returns nil
// and no error when the table does not exist.
func lookupTable(ctx context.Context, conn *pgx.Conn, name change.TableName) (*sourceTable, []uniqueIndex, error) {
	t := &sourceTable{}
	err := conn.QueryRow(ctx, tableSQL, name.Schema, name.Name).
		Scan(&t.oid, &t.relkind, &t.identity, &t.owned, &t.canRead, &t.schemaUsage)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("look up %s: %w", name, err)
	}

	t.columns, err = readColumns(ctx, conn, t.oid)
	if err != nil {
		return nil, nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	indexes, err := readUniqueIndexes(ctx, conn, t.oid)
	if err != nil {
		return nil, nil, fmt.Errorf("read unique indexes of %s: %w", name, err)
	}
	return t, indexes, nil
}

func readColumns(ctx context.Context, conn *pgx.Conn, oid uint32) ([]column, error) {
	rows, err := conn.Query(ctx, columnsSQL, oid)
	if err != nil {
		return nil, err
	}
	var columns []column
	var col column
	scans := []any{&col.name, &col.typ, &col.typeName, &col.typmod, &col.generated, &col.notNull, &col.hasValue}
	_, err = pgx.ForEachRow(rows, scans, func() error {
		columns = append(columns, col)
		return nil
	})
	return columns, err
}

func readUniqueIndexes(ctx context.Context, conn *pgx.Conn, oid uint32) ([]uniqueIndex, error) {
	rows, err := conn.Query(ctx, indexesSQL, oid)
	if err != nil {
		return nil, err
	}
	var indexes []uniqueIndex
	var idx uniqueIndex
	scans := []any{&idx.name, &idx.primary, &idx.replIdent, &idx.deferrable, &idx.plain, &idx.notNull, &idx.columns}
	_, err = pgx.ForEachRow(rows, scans, func() error {
		indexes = append(indexes, idx)
		return nil
	})
	return indexes, err
}

// setKeys fills the primary key, the replica identity columns and a candidate index
// from the table's unique indexes.
func (t *sourceTable) setKeys(indexes []uniqueIndex) {
	for _, idx := range indexes {
		switch {
		case idx.primary:
			t.primaryKey, t.primaryKeyName, t.deferrable = idx.columns, unqualified(idx.name), idx.deferrable
			if t.identity == "d" && !idx.deferrable {
				t.key = idx.columns
			}
		case idx.replIdent && t.identity == "i":
			t.key = idx.columns
		case t.candidate == "" && idx.plain && idx.notNull && !idx.deferrable:
			t.candidate = idx.name
		}
	}
}

func (t *sourceTable) column(name string) (column, bool) {
	for _, c := range t.columns {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

// checkSourceTable checks that a configured table exists, that its UPDATEs and DELETEs
// can be replicated with a key changesync can use, and that the columns the configuration
// names exist.
func (c *checker) checkSourceTable(ctx context.Context, conn *pgx.Conn, i int, role sourceRole) {
	spec := &c.cfg.Tables[i]
	name := "source table " + config.FormatTableName(spec.Source)
	t, indexes, err := lookupTable(ctx, conn, spec.Source)
	if err != nil {
		c.report.fail(name, err.Error(), "")
		return
	}
	if t == nil {
		c.report.fail(name, "not found on the source",
			fmt.Sprintf("create it, or correct tables[%d].source", i))
		return
	}
	t.setKeys(indexes)

	var is issues
	switch t.relkind {
	case "r", "p": // checkPublication checks publish_via_partition_root for "p"
	default:
		c.report.fail(name, fmt.Sprintf("is not a table (relkind %s), and only tables can be published", t.relkind),
			fmt.Sprintf("point tables[%d].source at a table", i))
		return
	}
	c.sourceTables[i] = t

	checkIdentity(&is, i, spec, t)
	checkNamedColumns(&is, i, spec, t)
	checkExcludedKey(&is, i, spec, t)
	checkSourcePrivileges(&is, c.cfg.Source.Snapshot == "initial", spec, t, role)
	is.report(c.report, name, describeIdentity(spec, t))
}

// checkSourcePrivileges checks that the role may name the table, which the initial
// copy and CREATE or ALTER PUBLICATION need, and read it for the initial copy.
func checkSourcePrivileges(is *issues, initial bool, spec *config.Table, t *sourceTable, role sourceRole) {
	if !t.schemaUsage {
		detail := fmt.Sprintf("role %s lacks USAGE on schema %s", role.name, spec.Source.Schema)
		fix := fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", quoteIdent(spec.Source.Schema), quoteIdent(role.name))
		if initial {
			is.fail(detail+", so the initial snapshot cannot read the table", fix)
		} else {
			is.warn(detail+", so it cannot add the table to the publication or copy it later", fix)
		}
	}
	if initial && !t.canRead {
		is.fail(fmt.Sprintf("role %s may not read it for the initial snapshot", role.name),
			fmt.Sprintf("GRANT SELECT ON %s TO %s", spec.Source.Sanitize(), quoteIdent(role.name)))
	}
}

// checkIdentity checks that UPDATE and DELETE on the table are replicated with the
// values of a key that changesync can match target rows by.
func checkIdentity(is *issues, i int, spec *config.Table, t *sourceTable) {
	table := spec.Source.Sanitize()
	addKey := fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s)", table, quoteList(spec.Key))
	if len(spec.Key) == 0 {
		addKey = fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (<columns that identify a row>)", table)
	}
	if t.identity != "d" {
		// A primary key serves as replica identity only under REPLICA IDENTITY DEFAULT.
		addKey += fmt.Sprintf(" and ALTER TABLE %s REPLICA IDENTITY DEFAULT", table)
	}
	full := fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", table)
	if len(spec.Key) == 0 {
		full += fmt.Sprintf(" and set tables[%d].key", i)
	}
	if t.candidate != "" {
		addKey = fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY USING INDEX %s", table,
			quoteIdent(unqualified(t.candidate))) + ", or " + addKey
	}

	switch {
	case t.identity == "f" && len(spec.Key) == 0 && t.primaryKey != nil && !t.deferrable:
		// The applier matches rows by the target's primary or unique key, which the
		// target checks require.
	case t.identity == "f" && len(spec.Key) == 0:
		is.warn("has REPLICA IDENTITY FULL and no key, so target rows are matched by all their "+
			"columns, a change touches one of identical rows, and changes cannot be undone",
			fmt.Sprintf("set tables[%d].key to the columns that identify a row, if some do", i))
	case t.identity == "f":
	case t.identity == "d" && t.primaryKey != nil && t.deferrable:
		// The constraint of a primary key is named after its index.
		is.fail("has a DEFERRABLE primary key, which cannot serve as replica identity, so "+
			"UPDATE and DELETE fail once the table is published",
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD PRIMARY KEY (%s), or %s", table,
				quoteIdent(t.primaryKeyName), quoteList(t.primaryKey), full))
	case t.identity == "n" && t.primaryKey != nil && !t.deferrable:
		is.fail("has REPLICA IDENTITY NOTHING, so UPDATE and DELETE fail once the table is published",
			fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT", table))
	case t.key == nil:
		is.fail("has no primary key or replica identity index, so UPDATE and DELETE fail once "+
			"the table is published", addKey+", or "+full)
	}
}

// checkNamedColumns checks that the columns the table's configuration names exist, and
// warns when a configured key is not covered by the replica identity.
func checkNamedColumns(is *issues, i int, spec *config.Table, t *sourceTable) {
	var missing []string
	named := slices.Concat(spec.Key, sortedKeys(spec.Columns), sortedKeys(spec.Transform))
	if spec.ActorColumn != "" {
		named = append(named, spec.ActorColumn)
	}
	for _, col := range named {
		if _, ok := t.column(col); !ok && !slices.Contains(missing, col) {
			missing = append(missing, col)
		}
	}
	if len(missing) > 0 {
		is.fail(fmt.Sprintf("has no column %s", quoteList(missing)),
			fmt.Sprintf("correct the column names in tables[%d]; names are case-sensitive", i))
	}

	var unknown []string
	for _, col := range spec.Exclude {
		if _, ok := t.column(col); !ok {
			unknown = append(unknown, col)
		}
	}
	if len(unknown) > 0 {
		is.warn(fmt.Sprintf("excludes %s, which it does not have", quoteList(unknown)),
			fmt.Sprintf("correct or remove them in tables[%d].exclude", i))
	}

	if t.identity != "f" && t.key != nil && len(spec.Key) > 0 {
		var outside []string
		for _, col := range spec.Key {
			if !slices.Contains(t.key, col) {
				outside = append(outside, col)
			}
		}
		if len(outside) > 0 {
			is.fail(fmt.Sprintf("key column %s is not in the replica identity (%s), so an UPDATE "+
				"that changes it sends no old value to find the target row by", quoteList(outside),
				quoteList(t.key)),
				fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL, or key the table by its replica "+
					"identity", spec.Source.Sanitize()))
		}
	}
}

// checkExcludedKey fails when tables[].exclude lists a column of the replica identity
// that serves as the key, because the applier finds and writes target rows by the key.
// The configuration check already rejects an excluded column of a configured key.
func checkExcludedKey(is *issues, i int, spec *config.Table, t *sourceTable) {
	var excluded []string
	for _, col := range keyColumns(spec, t) {
		if slices.Contains(spec.Exclude, col) {
			excluded = append(excluded, col)
		}
	}
	if len(excluded) == 0 {
		return
	}
	is.fail(fmt.Sprintf("key column %s is excluded in tables[%d].exclude, but changesync needs "+
		"the key to find and write target rows", quoteList(excluded), i),
		fmt.Sprintf("remove %s from tables[%d].exclude, or set tables[%d].key to other columns "+
			"that identify a row", quoteList(excluded), i, i))
}

func describeIdentity(spec *config.Table, t *sourceTable) string {
	var identity string
	switch t.identity {
	case "f":
		identity = "replica identity FULL"
	case "i":
		identity = "replica identity index (" + quoteList(t.key) + ")"
	default:
		identity = "primary key (" + quoteList(t.key) + ")"
	}
	if len(spec.Key) > 0 {
		identity += ", key (" + quoteList(spec.Key) + ")"
	}
	return fmt.Sprintf("%s, %d columns", identity, len(t.columns))
}

// keyColumns returns the source columns that identify a row: the configured key, or the
// replica identity. It is nil when neither is usable.
func keyColumns(spec *config.Table, t *sourceTable) []string {
	if len(spec.Key) > 0 {
		return spec.Key
	}
	if t.identity == "f" {
		return nil
	}
	return t.key
}

// quoteList quotes identifiers for SQL and joins them with commas.
func quoteList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = quoteIdent(n)
	}
	return strings.Join(quoted, ", ")
}

// unqualified strips the schema that regclass output adds to an index outside the
// search path, and the quotes, because quoteIdent adds them again.
func unqualified(name string) string {
	parts, err := config.ParseTableName(name)
	if err != nil {
		return name
	}
	return parts.Name
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
