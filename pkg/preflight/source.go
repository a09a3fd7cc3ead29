package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// minServerVersion is the oldest PostgreSQL whose pgoutput sends the logical decoding
// messages that carry the actor of a transaction: the messages option came in 14.
const minServerVersion = 140000

// sourceRole describes the connected source role: its attributes and privileges.
type sourceRole struct {
	name        string
	database    string
	superuser   bool
	replication bool
	createDB    bool // CREATE privilege on the database, needed to create a publication
}

func (c *checker) checkSource(ctx context.Context, conn *pgx.Conn) {
	if !c.checkServer(ctx, conn) {
		return
	}
	role, ok := c.checkRole(ctx, conn)
	if !ok {
		return
	}
	if role.superuser || role.replication {
		c.checkReplicationConnection(ctx)
	}
	c.checkCapacity(ctx, conn)

	for i := range c.cfg.Tables {
		c.checkSourceTable(ctx, conn, i, role)
	}
	c.checkPublication(ctx, conn, role)
	c.checkSlot(ctx, conn)
}

// checkServer checks the server version and wal_level.
func (c *checker) checkServer(ctx context.Context, conn *pgx.Conn) bool {
	var versionNum int
	var walLevel string
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
		current_setting('wal_level')`).Scan(&versionNum, &walLevel)
	if err != nil {
		c.report.fail("source settings", fmt.Sprintf("read server_version_num and wal_level: %v; "+
			"the other source checks did not run", err), "")
		return false
	}

	if versionNum < minServerVersion {
		c.report.fail("source version", fmt.Sprintf("server_version_num %d is older than PostgreSQL 14, "+
			"whose pgoutput is the first to send logical decoding messages", versionNum),
			"upgrade the source to PostgreSQL 14 or later")
	}
	if walLevel != "logical" {
		c.report.fail("source wal_level", fmt.Sprintf("wal_level is %s, so the server writes no "+
			"logical decoding information; the other source checks did not run", walLevel),
			"run ALTER SYSTEM SET wal_level = logical as a superuser, then restart the server")
		return false
	}
	c.report.pass("source wal_level", "logical")
	return true
}

// checkRole checks that the role may stream changes: a superuser, or a role with the
// REPLICATION attribute.
func (c *checker) checkRole(ctx context.Context, conn *pgx.Conn) (sourceRole, bool) {
	var r sourceRole
	err := conn.QueryRow(ctx, `SELECT current_user, current_database(), rolsuper, rolreplication,
		has_database_privilege(current_database(), 'CREATE')
		FROM pg_roles WHERE rolname = current_user`).
		Scan(&r.name, &r.database, &r.superuser, &r.replication, &r.createDB)
	if err != nil {
		c.report.fail("source replication role", fmt.Sprintf("read role attributes: %v; the other "+
			"source checks did not run", err), "")
		return r, false
	}

	const name = "source replication role"
	switch {
	case r.superuser:
		c.report.pass(name, fmt.Sprintf("%s is a superuser", r.name))
	case r.replication:
		c.report.pass(name, fmt.Sprintf("%s has REPLICATION", r.name))
	default:
		c.report.fail(name, fmt.Sprintf("role %s is neither a superuser nor has REPLICATION, so it "+
			"cannot create or read a replication slot", r.name),
			fmt.Sprintf("run as a superuser: ALTER ROLE %s REPLICATION", quoteIdent(r.name)))
	}
	return r, true
}

// checkReplicationConnection opens the kind of connection capture uses and runs
// IDENTIFY_SYSTEM on it, which shows that pg_hba.conf and max_wal_senders let it in.
func (c *checker) checkReplicationConnection(ctx context.Context) {
	const name = "source replication connection"
	connCfg, err := pgconn.ParseConfig(c.cfg.Source.URL)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("invalid connection string %s", config.RedactURL(c.cfg.Source.URL)), "")
		return
	}
	connCfg.RuntimeParams["replication"] = "database"
	connCfg.RuntimeParams["application_name"] = "changesync check"

	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, connCfg)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("connect with replication=database: %v", err),
			"allow the role to connect to the source database in pg_hba.conf, and check that "+
				"max_wal_senders leaves a free WAL sender")
		return
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()

	results, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil || len(results) == 0 || len(results[0].Rows) == 0 || len(results[0].Rows[0]) < 2 {
		c.report.fail(name, fmt.Sprintf("IDENTIFY_SYSTEM: %v", err), "")
		return
	}
	row := results[0].Rows[0]
	c.report.pass(name, fmt.Sprintf("system %s, timeline %s", row[0], row[1]))
}

// checkCapacity checks that max_replication_slots and max_wal_senders leave room for
// the slot and its WAL sender.
func (c *checker) checkCapacity(ctx context.Context, conn *pgx.Conn) {
	const name = "source slots and WAL senders"
	var maxSlots, usedSlots, maxSenders, usedSenders int
	var slotExists bool
	err := conn.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int,
		(SELECT count(*) FROM pg_replication_slots),
		EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
		current_setting('max_wal_senders')::int,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')`,
		c.cfg.Source.Slot).Scan(&maxSlots, &usedSlots, &slotExists, &maxSenders, &usedSenders)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("read replication settings: %v", err), "")
		return
	}

	detail := fmt.Sprintf("%d of %d slots used, %d of %d WAL senders in use",
		usedSlots, maxSlots, usedSenders, maxSenders)
	switch {
	case !slotExists && usedSlots >= maxSlots:
		c.report.fail(name, detail+": no slot is free for "+c.cfg.Source.Slot,
			"raise max_replication_slots and restart the server, or drop an unused slot with "+
				"SELECT pg_drop_replication_slot('name')")
	case usedSenders >= maxSenders:
		c.report.fail(name, detail+": no WAL sender is free",
			"raise max_wal_senders and restart the server, or stop an unused replication client")
	default:
		c.report.pass(name, detail)
	}
}

// publication describes an existing publication as pg_publication records it.
type publication struct {
	allTables, insert, update, del bool
	viaRoot                        bool   // publish_via_partition_root
	owner                          string // the role that owns it
	owned                          bool   // the role is the owner or a member of it
}

// checkPublication reports whether the publication exists and what it publishes. A
// missing publication is no failure, because changesync creates it, but the role must be
// allowed to.
func (c *checker) checkPublication(ctx context.Context, conn *pgx.Conn, role sourceRole) {
	pub := c.cfg.Source.Publication
	name := "publication " + pub
	var p publication
	err := conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubviaroot,
		pg_get_userbyid(pubowner), pg_has_role(pubowner, 'USAGE')
		FROM pg_publication WHERE pubname = $1`, pub).
		Scan(&p.allTables, &p.insert, &p.update, &p.del, &p.viaRoot, &p.owner, &p.owned)
	if errors.Is(err, pgx.ErrNoRows) {
		c.checkPublicationCreate(name, role)
		return
	}
	if err != nil {
		c.report.fail(name, fmt.Sprintf("read publication: %v", err), "")
		return
	}

	if !p.insert || !p.update || !p.del {
		c.report.fail(name, "exists but does not publish every INSERT, UPDATE and DELETE",
			fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')",
				quoteIdent(pub)))
		return
	}
	// Without publish_via_partition_root, pgoutput sends the changes of a partitioned
	// table under the names of its partitions, and the pipeline skips changes of tables
	// that are not configured.
	if partitioned := c.partitionedTables(); len(partitioned) > 0 && !p.viaRoot {
		c.report.fail(name, fmt.Sprintf("exists without publish_via_partition_root, so the changes "+
			"of partitioned table %s arrive under the names of its partitions, and changesync "+
			"would skip them", strings.Join(partitioned, ", ")),
			fmt.Sprintf("run as its owner %s or a superuser: ALTER PUBLICATION %s SET "+
				"(publish_via_partition_root = true)", p.owner, quoteIdent(pub)))
		return
	}
	if p.allTables {
		c.report.pass(name, "exists, FOR ALL TABLES")
		return
	}

	missing, err := c.unpublishedTables(ctx, conn)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("list published tables: %v", err), "")
		return
	}
	if len(missing) == 0 {
		c.report.pass(name, "exists and publishes every configured table")
		return
	}
	c.checkPublicationAlter(name, role, p, missing)
}

// checkPublicationAlter checks that the role may add the missing tables to the
// publication: ALTER PUBLICATION … ADD TABLE needs ownership of the publication and of
// the tables, unless the role is a superuser.
func (c *checker) checkPublicationAlter(name string, role sourceRole, p publication, missing []int) {
	var tables, quoted, notOwned []string
	for _, i := range missing {
		t := c.cfg.Tables[i]
		tables = append(tables, config.FormatTableName(t.Source))
		quoted = append(quoted, t.Source.Sanitize())
		if st := c.sourceTables[i]; st != nil && !st.owned {
			notOwned = append(notOwned, config.FormatTableName(t.Source))
		}
	}

	var lacks []string
	if !role.superuser && !p.owned {
		lacks = append(lacks, "ownership of the publication (owner "+p.owner+")")
	}
	if !role.superuser && len(notOwned) > 0 {
		lacks = append(lacks, "ownership of "+strings.Join(notOwned, ", "))
	}
	if len(lacks) == 0 {
		c.report.pass(name, fmt.Sprintf("exists; changesync adds %s to it when it starts",
			strings.Join(tables, ", ")))
		return
	}
	c.report.fail(name, fmt.Sprintf("exists without %s, and role %s may not add tables to it, because it "+
		"lacks %s", strings.Join(tables, ", "), role.name, strings.Join(lacks, " and ")),
		fmt.Sprintf("run as a superuser, or as a role that owns the publication and the tables: "+
			"ALTER PUBLICATION %s ADD TABLE %s", quoteIdent(c.cfg.Source.Publication),
			strings.Join(quoted, ", ")))
}

// checkPublicationCreate checks that the role may create the publication: CREATE on the
// database, and ownership of every table unless it is a superuser. It names everything
// the role lacks at once.
func (c *checker) checkPublicationCreate(name string, role sourceRole) {
	var notOwned, alterOwner []string
	for i, t := range c.cfg.Tables {
		if st := c.sourceTables[i]; st != nil && !st.owned && !role.superuser {
			notOwned = append(notOwned, config.FormatTableName(t.Source))
			alterOwner = append(alterOwner, fmt.Sprintf("ALTER TABLE %s OWNER TO %s",
				t.Source.Sanitize(), quoteIdent(role.name)))
		}
	}

	create := "CREATE PUBLICATION " + quoteIdent(c.cfg.Source.Publication) + " FOR TABLE " +
		strings.Join(c.sourceTableList(), ", ")
	if len(c.partitionedTables()) > 0 {
		// changesync creates its publication with this option too.
		create += " WITH (publish_via_partition_root = true)"
	}

	var lacks, grants []string
	if !role.superuser && !role.createDB {
		lacks = append(lacks, "CREATE on database "+role.database)
		grants = append(grants, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s",
			quoteIdent(role.database), quoteIdent(role.name)))
	}
	if len(notOwned) > 0 {
		lacks = append(lacks, "ownership of "+strings.Join(notOwned, ", "))
		grants = append(grants, alterOwner...)
	}
	if len(lacks) == 0 {
		c.report.pass(name, "does not exist yet; changesync creates it when it starts")
		return
	}
	c.report.fail(name, fmt.Sprintf("does not exist, and role %s may not create it, because it "+
		"lacks %s", role.name, strings.Join(lacks, " and ")),
		fmt.Sprintf("create it as a superuser (changesync then uses it as it is): %s; or let role %s "+
			"create it: %s", create, role.name, strings.Join(grants, "; ")))
}

// partitionedTables returns the configured source tables that are partitioned.
func (c *checker) partitionedTables() []string {
	var names []string
	for i, t := range c.cfg.Tables {
		if st := c.sourceTables[i]; st != nil && st.relkind == "p" {
			names = append(names, config.FormatTableName(t.Source))
		}
	}
	return names
}

// unpublishedTables returns the indexes into cfg.Tables of the configured tables that
// the publication lacks.
func (c *checker) unpublishedTables(ctx context.Context, conn *pgx.Conn) ([]int, error) {
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables
		WHERE pubname = $1`, c.cfg.Source.Publication)
	if err != nil {
		return nil, err
	}
	published := map[change.TableName]bool{}
	var t change.TableName
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name}, func() error {
		published[t] = true
		return nil
	})
	if err != nil {
		return nil, err
	}

	var missing []int
	for i, table := range c.cfg.Tables {
		if !published[table.Source] {
			missing = append(missing, i)
		}
	}
	return missing, nil
}

// checkSlot reports whether the slot exists and whether it can be streamed from.
func (c *checker) checkSlot(ctx context.Context, conn *pgx.Conn) {
	slot := c.cfg.Source.Slot
	name := "slot " + slot
	var s struct {
		slotType, plugin, database, walStatus, retained string
		activePID                                       *int32
	}
	err := conn.QueryRow(ctx, `SELECT slot_type, coalesce(plugin, ''), coalesce(database, ''),
		coalesce(wal_status, ''), active_pid,
		coalesce(pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)), 'no')
		FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&s.slotType, &s.plugin, &s.database, &s.walStatus, &s.activePID, &s.retained)
	if errors.Is(err, pgx.ErrNoRows) {
		detail := "does not exist yet; changesync creates it when it starts"
		if c.cfg.Source.Snapshot == "initial" {
			detail += ", with an initial snapshot of the tables"
		}
		c.report.pass(name, detail)
		return
	}
	if err != nil {
		c.report.fail(name, fmt.Sprintf("read slot: %v", err), "")
		return
	}

	var current string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		c.report.fail(name, fmt.Sprintf("read current database: %v", err), "")
		return
	}
	c.reportSlot(name, current, s.slotType, s.plugin, s.database, s.walStatus, s.retained, s.activePID)
}

func (c *checker) reportSlot(name, current, slotType, plugin, database, walStatus, retained string,
	activePID *int32,
) {
	slot := c.cfg.Source.Slot
	detail := fmt.Sprintf("exists, wal_status %s, %s of WAL retained", walStatus, retained)
	switch {
	case slotType != "logical" || plugin != "pgoutput" || database != current:
		c.report.fail(name, fmt.Sprintf("exists as a %s slot of database %q with plugin %q, but "+
			"changesync needs a logical pgoutput slot of database %q", slotType, database, plugin, current),
			fmt.Sprintf("set source.slot to another name, or drop the slot if nothing uses it: "+
				"SELECT pg_drop_replication_slot('%s')", slot))
	case walStatus == "lost":
		c.report.fail(name, "exists but its wal_status is lost: the server removed WAL the slot "+
			"still needed, so changes were missed",
			"run changesync teardown, then start changesync again: it creates a new slot and "+
				"takes a fresh snapshot of the tables (source.snapshot: initial)")
	case walStatus == "unreserved":
		c.report.warn(name, detail+"; the slot is about to lose WAL it still needs",
			"start changesync soon, or raise max_slot_wal_keep_size")
	case activePID != nil:
		c.report.warn(name, fmt.Sprintf("%s; in use by process %d", detail, *activePID),
			"stop the other client of the slot (another changesync?) before starting this one")
	default:
		c.report.pass(name, detail)
	}
}

// sourceTableList returns the configured source tables quoted for SQL.
func (c *checker) sourceTableList() []string {
	names := make([]string, len(c.cfg.Tables))
	for i, t := range c.cfg.Tables {
		names[i] = t.Source.Sanitize()
	}
	return names
}

// quoteIdent quotes one identifier for SQL in a Fix.
func quoteIdent(s string) string {
	return pgx.Identifier{s}.Sanitize()
}
