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

func (c *checker) checkTarget(ctx context.Context, conn *pgx.Conn) {
	var user, database string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &database); err != nil {
		c.report.fail("target role", fmt.Sprintf("read current role: %v; the other target checks "+
			"did not run", err), "")
		return
	}
	for i := range c.cfg.Tables {
		c.checkTargetTable(ctx, conn, i, user)
	}
	c.checkMetadataSchema(ctx, conn, user, database)
}

// targetTable describes a configured target table as the target catalog records it.
type targetTable struct {
	columns    []column
	uniqueKeys [][]string
	missing    []string // privileges of SELECT, INSERT, UPDATE and DELETE the role lacks
	// schemaUsage is the USAGE privilege on the table's schema, without which the role
	// cannot name the table, whatever its table privileges.
	schemaUsage bool
	// noDefault lists, schema and name, each partitioned table in the target table's
	// partition tree, itself included, that has no DEFAULT partition.
	noDefault [][2]string
}

const targetTableSQL = `SELECT c.oid, c.relkind::text,
       array_remove(ARRAY[
         CASE WHEN NOT has_table_privilege(c.oid, 'SELECT') THEN 'SELECT' END,
         CASE WHEN NOT has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END,
         CASE WHEN NOT has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END,
         CASE WHEN NOT has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END], NULL),
       has_schema_privilege(n.oid, 'USAGE')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2`

// checkTargetTable checks that a target table exists, that the role may write it, and
// that every mapped source column has a target column of a type it can be written into.
func (c *checker) checkTargetTable(ctx context.Context, conn *pgx.Conn, i int, user string) {
	spec := &c.cfg.Tables[i]
	name := "target table " + config.FormatTableName(spec.Target)
	source := c.sourceTables[i]
	if spec.Target == spec.Source && c.sameDatabase() {
		c.report.fail(name, "is the source table itself, because source and target are the same database",
			fmt.Sprintf("set target.url to another database or tables[%d].target to another table", i))
		return
	}

	var oid uint32
	var relkind string
	var tt targetTable
	err := conn.QueryRow(ctx, targetTableSQL, spec.Target.Schema, spec.Target.Name).
		Scan(&oid, &relkind, &tt.missing, &tt.schemaUsage)
	if errors.Is(err, pgx.ErrNoRows) {
		c.report.fail(name, "not found on the target", createTableFix(i, spec, source))
		return
	}
	if err != nil {
		c.report.fail(name, fmt.Sprintf("look up %s: %v", spec.Target, err), "")
		return
	}
	if relkind != "r" && relkind != "p" {
		c.report.fail(name, fmt.Sprintf("is not a table (relkind %s)", relkind),
			fmt.Sprintf("point tables[%d].target at a table", i))
		return
	}

	if err := tt.load(ctx, conn, oid); err != nil {
		c.report.fail(name, err.Error(), "")
		return
	}

	var is issues
	if !tt.schemaUsage {
		is.fail(fmt.Sprintf("role %s lacks USAGE on schema %s, so it cannot read or write the table",
			user, spec.Target.Schema),
			fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", quoteIdent(spec.Target.Schema), quoteIdent(user)))
	}
	if len(tt.missing) > 0 {
		is.fail(fmt.Sprintf("role %s lacks %s on it", user, strings.Join(tt.missing, ", ")),
			fmt.Sprintf("GRANT %s ON %s TO %s", strings.Join(tt.missing, ", "), spec.Target.Sanitize(),
				quoteIdent(user)))
	}
	checkDefaultPartition(&is, spec, &tt)
	detail := "exists"
	if source != nil {
		mapped := checkMapping(&is, i, spec, source, &tt)
		detail = fmt.Sprintf("%d mapped columns", mapped)
	}
	is.report(c.report, name, detail)
}

// load reads the target table's columns and the column lists of its unique indexes.
func (tt *targetTable) load(ctx context.Context, conn *pgx.Conn, oid uint32) error {
	var err error
	tt.columns, err = readColumns(ctx, conn, oid)
	if err != nil {
		return fmt.Errorf("read columns: %w", err)
	}

	indexes, err := readUniqueIndexes(ctx, conn, oid)
	if err != nil {
		return fmt.Errorf("read unique indexes: %w", err)
	}
	for _, idx := range indexes {
		if idx.plain {
			tt.uniqueKeys = append(tt.uniqueKeys, idx.columns)
		}
	}

	tt.noDefault, err = readPartitionsWithoutDefault(ctx, conn, oid)
	if err != nil {
		return fmt.Errorf("read partitions: %w", err)
	}
	return nil
}

// partitionsWithoutDefaultSQL lists the partitioned tables of a partition tree that
// have no DEFAULT partition. It returns no rows for an unpartitioned table.
const partitionsWithoutDefaultSQL = `SELECT n.nspname, c.relname
  FROM pg_partition_tree($1) t
  JOIN pg_partitioned_table p ON p.partrelid = t.relid
  JOIN pg_class c ON c.oid = t.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE p.partdefid = 0
 ORDER BY t.level, n.nspname, c.relname`

func readPartitionsWithoutDefault(ctx context.Context, conn *pgx.Conn, oid uint32) ([][2]string, error) {
	rows, err := conn.Query(ctx, partitionsWithoutDefaultSQL, oid)
	if err != nil {
		return nil, err
	}
	var tables [][2]string
	var table [2]string
	_, err = pgx.ForEachRow(rows, []any{&table[0], &table[1]}, func() error {
		tables = append(tables, table)
		return nil
	})
	return tables, err
}

// checkDefaultPartition warns about a partitioned target table, or a partitioned
// partition of it, without a DEFAULT partition, because a row outside the bounds of
// every partition fails. The bounds are not compared with the source's values.
func checkDefaultPartition(is *issues, spec *config.Table, tt *targetTable) {
	if len(tt.noDefault) == 0 {
		return
	}
	var names, creates []string
	for _, t := range tt.noDefault {
		names = append(names, config.FormatTableName(change.TableName{Schema: t[0], Name: t[1]}))
		table := pgx.Identifier{t[0], t[1]}.Sanitize()
		partition := pgx.Identifier{t[0], t[1] + "_default"}.Sanitize()
		creates = append(creates, fmt.Sprintf("CREATE TABLE %s PARTITION OF %s DEFAULT", partition, table))
	}
	is.warn(fmt.Sprintf("is partitioned, and %s has no DEFAULT partition, so a row that no partition "+
		"accepts fails: %s", strings.Join(names, ", "), rejectionEffect("row")),
		strings.Join(creates, "; ")+fmt.Sprintf(", or create partitions for every value of %s",
			config.FormatTableName(spec.Source)))
}

// rejectionEffect describes what happens to a value or a row, as what names it, that the
// target rejects.
func rejectionEffect(what string) string {
	return fmt.Sprintf("the initial copy (snapshot: initial) stops at the first such %s, because "+
		"the copy is all-or-nothing, and a streamed change with such a %s is recorded as failed", what, what)
}

func (tt *targetTable) column(name string) (column, bool) {
	for _, c := range tt.columns {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

// mappedColumn is a source column and the target column it is written to.
type mappedColumn struct {
	source column
	target string
}

// mapColumns applies the renames and excludes to the source columns. Generated source
// columns are left out because PostgreSQL 15 skips them in logical replication.
func mapColumns(spec *config.Table, source *sourceTable) []mappedColumn {
	var mapped []mappedColumn
	for _, col := range source.columns {
		if col.generated || slices.Contains(spec.Exclude, col.name) {
			continue
		}
		target := col.name
		if renamed, ok := spec.Columns[col.name]; ok {
			target = renamed
		}
		mapped = append(mapped, mappedColumn{source: col, target: target})
	}
	return mapped
}

// checkMapping checks the mapped columns against the target table and returns how many
// there are.
func checkMapping(is *issues, i int, spec *config.Table, source *sourceTable, tt *targetTable) int {
	mapped := mapColumns(spec, source)
	table := spec.Target.Sanitize()

	var missing, addColumns, mismatched, alignTypes []string
	writers := map[string]string{} // target column -> source column
	for _, m := range mapped {
		if other, taken := writers[m.target]; taken {
			is.fail(fmt.Sprintf("source columns %s and %s both map to column %s", quoteIdent(other),
				quoteIdent(m.source.name), quoteIdent(m.target)),
				fmt.Sprintf("rename or exclude one of them in tables[%d]", i))
		}
		writers[m.target] = m.source.name

		tc, ok := tt.column(m.target)
		_, transformed := spec.Transform[m.source.name]
		switch {
		case !ok:
			missing = append(missing, m.target)
			addColumns = append(addColumns, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table,
				quoteIdent(m.target), m.source.typ))
		case tc.generated:
			is.fail(fmt.Sprintf("column %s is generated and cannot be written", quoteIdent(m.target)),
				fmt.Sprintf("exclude %s in tables[%d].exclude or map it to another column",
					quoteIdent(m.source.name), i))
		case transformed:
			// The transform computes the value written, so the source type does not
			// determine what the target column receives.
		case !writable(m.source.typeName, tc.typeName):
			mismatched = append(mismatched, fmt.Sprintf("%s (%s into %s)", quoteIdent(m.target),
				m.source.typeName, tc.typeName))
			alignTypes = append(alignTypes, alterType(table, m.target, m.source.typ))
		default:
			checkModifier(is, table, m, tc)
		}
	}
	if len(missing) > 0 {
		is.fail(fmt.Sprintf("has no column %s", quoteList(missing)),
			strings.Join(addColumns, "; ")+fmt.Sprintf(", or exclude the source columns in tables[%d].exclude", i))
	}
	if len(mismatched) > 0 {
		is.warn(fmt.Sprintf("column types differ: %s, so values that do not convert fail: %s",
			strings.Join(mismatched, ", "), rejectionEffect("value")), strings.Join(alignTypes, "; ")+
			fmt.Sprintf(", or convert the values with tables[%d].transform", i))
	}

	checkUnmappedRequired(is, i, tt, writers)
	checkTargetKey(is, spec, source, tt)
	return len(mapped)
}

// checkModifier reports a target column whose type modifier is narrower than the source
// column's. It fails when the target changes values without an error, such as numeric
// rounding, because the target would then differ from the source and from the audit. It
// warns when the target rejects the values that do not fit.
func checkModifier(is *issues, table string, m mappedColumn, target column) {
	n := checkNarrowing(m.source, target)
	if n == nil {
		return
	}
	detail := fmt.Sprintf("column %s is %s, narrower than source column %s %s: it %s",
		quoteIdent(m.target), target.typ, quoteIdent(m.source.name), m.source.typ, n.effect)
	fix := alterType(table, m.target, n.wider)
	if n.silent {
		is.fail(detail+", so the target would differ from the source and from the audit", fix)
		return
	}
	is.warn(detail+", and those changes fail to apply", fix)
}

// alterType returns the ALTER TABLE statement that changes a column's type.
func alterType(table, col, typ string) string {
	return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", table, quoteIdent(col), typ)
}

// checkUnmappedRequired warns about NOT NULL target columns without a default that no
// source column writes, because every INSERT would leave them NULL and fail.
func checkUnmappedRequired(is *issues, i int, tt *targetTable, writers map[string]string) {
	var required []string
	for _, col := range tt.columns {
		if _, written := writers[col.name]; !written && col.notNull && !col.hasValue && !col.generated {
			required = append(required, col.name)
		}
	}
	if len(required) > 0 {
		is.warn(fmt.Sprintf("NOT NULL column %s has no default and no source column, so an INSERT fails",
			quoteList(required)), fmt.Sprintf("give it a default, or map a source column to it in tables[%d].columns", i))
	}
}

// checkTargetKey checks that the target has a unique index on exactly the mapped key
// columns, which the applier needs to find and upsert rows.
func checkTargetKey(is *issues, spec *config.Table, source *sourceTable, tt *targetTable) {
	key := keyColumns(spec, source)
	if key == nil {
		return // the source check reports the missing key
	}
	targetKey := make([]string, len(key))
	for j, col := range key {
		targetKey[j] = col
		if renamed, ok := spec.Columns[col]; ok {
			targetKey[j] = renamed
		}
	}
	for _, cols := range tt.uniqueKeys {
		if sameSet(cols, targetKey) {
			return
		}
	}
	is.fail(fmt.Sprintf("has no unique index on the key (%s)", quoteList(targetKey)),
		fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s), or CREATE UNIQUE INDEX ON %s (%s)",
			spec.Target.Sanitize(), quoteList(targetKey), spec.Target.Sanitize(), quoteList(targetKey)))
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// textTypes are the target types that take the text of any source value.
var textTypes = map[string]bool{"text": true, "character varying": true, "character": true, "citext": true}

// widenings are the type pairs (source, target) whose every source value fits the target.
var widenings = map[[2]string]bool{
	{"smallint", "integer"}:      true,
	{"smallint", "bigint"}:       true,
	{"smallint", "numeric"}:      true,
	{"integer", "bigint"}:        true,
	{"integer", "numeric"}:       true,
	{"bigint", "numeric"}:        true,
	{"real", "double precision"}: true,
	{"json", "jsonb"}:            true,
	{"timestamp without time zone", "timestamp with time zone"}: true,
}

// writable reports whether values of the source type can be written into the target
// type: the same type, a text-like target, or a widening such as integer into bigint.
func writable(source, target string) bool {
	return source == target || textTypes[target] || widenings[[2]string{source, target}]
}

// createTableFix returns a CREATE TABLE for a missing target table, with the mapped
// columns and source types, when the source table is known.
func createTableFix(i int, spec *config.Table, source *sourceTable) string {
	if source == nil {
		return fmt.Sprintf("create it, or point tables[%d].target at an existing table", i)
	}
	var defs []string
	for _, m := range mapColumns(spec, source) {
		defs = append(defs, quoteIdent(m.target)+" "+m.source.typ)
	}
	if key := keyColumns(spec, source); key != nil {
		targetKey := make([]string, len(key))
		for j, col := range key {
			targetKey[j] = col
			if renamed, ok := spec.Columns[col]; ok {
				targetKey[j] = renamed
			}
		}
		defs = append(defs, "PRIMARY KEY ("+quoteList(targetKey)+")")
	}
	return fmt.Sprintf("CREATE TABLE %s (%s), or point tables[%d].target at an existing table",
		spec.Target.Sanitize(), strings.Join(defs, ", "), i)
}

// checkMetadataSchema checks that the migrations can create their tables: the schema
// exists and the role may create in it, or the role may create the schema.
func (c *checker) checkMetadataSchema(ctx context.Context, conn *pgx.Conn, user, database string) {
	schema := c.cfg.Target.Schema
	name := "metadata schema " + schema
	var exists bool
	var canCreateIn, canCreateSchema *bool
	err := conn.QueryRow(ctx, `SELECT n.oid IS NOT NULL,
		CASE WHEN n.oid IS NOT NULL THEN has_schema_privilege(n.oid, 'USAGE, CREATE') END,
		has_database_privilege(current_database(), 'CREATE')
		FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`, schema).
		Scan(&exists, &canCreateIn, &canCreateSchema)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("look up schema: %v", err), "")
		return
	}

	switch {
	case exists && canCreateIn != nil && *canCreateIn:
		c.report.pass(name, "exists, and role "+user+" may create tables in it")
	case exists:
		c.report.fail(name, fmt.Sprintf("exists, but role %s lacks USAGE or CREATE on it", user),
			fmt.Sprintf("GRANT USAGE, CREATE ON SCHEMA %s TO %s", quoteIdent(schema), quoteIdent(user)))
	case canCreateSchema != nil && *canCreateSchema:
		c.report.pass(name, "does not exist yet; changesync creates it when it starts")
	default:
		c.report.fail(name, fmt.Sprintf("does not exist, and role %s lacks CREATE on database %s", user, database),
			fmt.Sprintf("CREATE SCHEMA %s AUTHORIZATION %s, or GRANT CREATE ON DATABASE %s TO %s",
				quoteIdent(schema), quoteIdent(user), quoteIdent(database), quoteIdent(user)))
	}
}
