package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
)

var (
	// A slot name may contain only lower-case letters, digits and underscores
	// (ReplicationSlotValidateName in PostgreSQL 15).
	slotNamePattern     = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	pipelineNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`)
	envNamePattern      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks a configuration whose environment overrides and defaults are already
// applied, as Load returns it, and returns one *FieldError per problem, joined.
func (c *Config) Validate() error {
	p := &problems{}
	c.validate(p)
	return errors.Join(p.errs...)
}

func (c *Config) validate(p *problems) {
	// The pipeline defaults to the slot name, whose own problem is reported on the slot.
	defaulted := c.Pipeline == c.Source.Slot && !slotNamePattern.MatchString(c.Source.Slot)
	if !defaulted && !pipelineNamePattern.MatchString(c.Pipeline) {
		p.add("pipeline", "invalid name %q: use 1 to 63 letters, digits, '_', '.' or '-'", c.Pipeline)
	}
	c.validateSource(p)
	c.validateTarget(p)
	c.validateTables(p)
	c.validateApply(p)
	c.validateRules(p)
	c.validateGuard(p)
	c.validateLLM(p)
	c.validateAPI(p)
	c.validateLog(p)
	if a := c.Audit.MaxValueBytes; a != 0 && a < MinAuditMaxValueBytes {
		p.add("audit.max_value_bytes", "invalid value %d: use 0 (store every value whole) or a "+
			"number of bytes of at least %d, such as %d (1 MiB)", a, MinAuditMaxValueBytes,
			DefaultAuditMaxValueBytes)
	}
	checkNotNegative(p, "retention.audit", c.Retention.Audit, "0 keeps the audit forever")
	checkNotNegative(p, "retention.undo_horizon", c.Retention.UndoHorizon, "0 keeps nothing for undo")
	checkNotNegative(p, "retention.outbox", c.Retention.Outbox, "0 keeps notifications forever")
	if c.Retention.Interval < time.Minute {
		p.add("retention.interval", "invalid value %s: use at least 1m, such as 1h", c.Retention.Interval)
	}
}

func (c *Config) validateSource(p *problems) {
	s := &c.Source
	checkEnvName(p, "source.url_env", s.URLEnv)
	switch {
	case s.URL == "" && s.URLEnv == "":
		p.add("source.url", "missing: set source.url, source.url_env or the %s environment "+
			"variable to a connection URL such as postgres://user@host:5432/dbname", EnvSourceURL)
	case s.URL != "":
		checkConnString(p, fieldOr(s.urlFrom, "source.url"), s.URL)
	}

	if !slotNamePattern.MatchString(s.Slot) {
		p.add("source.slot", "invalid slot name %q: use 1 to 63 lower-case letters, digits or "+
			"underscores", s.Slot)
	}
	checkIdentifier(p, "source.publication", s.Publication)
	if s.Snapshot != "initial" && s.Snapshot != "never" {
		p.invalidChoice("source.snapshot", s.Snapshot, "initial", "never")
	}

	if s.StatusInterval <= 0 || s.StatusInterval > DefaultStatusInterval {
		p.add("source.status_interval", "invalid duration %s: use more than 0 and at most %s, "+
			"so the server does not end the connection for lack of status updates",
			s.StatusInterval, DefaultStatusInterval)
	}
	checkNotNegative(p, "source.heartbeat", s.Heartbeat, "0 turns the heartbeat off")
	if s.SpillDir != "" {
		if info, err := os.Stat(s.SpillDir); err != nil || !info.IsDir() {
			p.add("source.spill_dir", "%q is not a directory: create it, or leave spill_dir "+
				"out to use the system's temporary directory", s.SpillDir)
		}
	}
}

func (c *Config) validateTarget(p *problems) {
	t := &c.Target
	checkEnvName(p, "target.url_env", t.URLEnv)
	if t.URL != "" && t.URL != c.Source.URL {
		checkConnString(p, fieldOr(t.urlFrom, "target.url"), t.URL)
	}
	checkIdentifier(p, "target.schema", t.Schema)
}

// checkConnString reports a URL that pgx cannot parse, without showing its password.
func checkConnString(p *problems, field, connString string) {
	if _, err := pgx.ParseConfig(connString); err != nil {
		p.add(field, "invalid connection string %s: %s: use a URL such as "+
			"postgres://user@host:5432/dbname or keywords such as 'host=db dbname=crm'",
			RedactURL(connString), parseConfigReason(err))
	}
}

// parseConfigReason returns why pgx rejected a connection string, leaving out the
// connection string that pgx's message repeats, because pgx masks passwords in it only
// on a best-effort basis.
func parseConfigReason(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err.Error()
	}
	msg := err.Error()
	var parseErr *pgconn.ParseConfigError
	if errors.As(err, &parseErr) {
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+len("`: "):]
		}
	}
	return msg
}

func (c *Config) validateTables(p *problems) {
	if len(c.Tables) == 0 {
		p.add("tables", "missing: list at least one table, such as '- source: crm.customers'")
		return
	}
	seen := map[change.TableName]int{}
	for i := range c.Tables {
		field := fmt.Sprintf("tables[%d]", i)
		t := &c.Tables[i]
		if t.Source == (change.TableName{}) {
			p.add(field+".source", "missing: set the source table, such as crm.customers")
			continue
		}
		if j, dup := seen[t.Source]; dup {
			p.add(field+".source", "%s is already listed as tables[%d]: list each source table once",
				FormatTableName(t.Source), j)
		}
		seen[t.Source] = i

		if t.Target == t.Source && c.Target.URL == c.Source.URL {
			p.add(field+".target", "the target is the source table %s itself: set target.url "+
				"to another database or tables[%d].target to another table", FormatTableName(t.Source), i)
		}
		validateTable(p, field, t)
	}
}

func validateTable(p *problems, field string, t *Table) {
	excluded := map[string]bool{}
	for j, col := range t.Exclude {
		f := fmt.Sprintf("%s.exclude[%d]", field, j)
		checkColumnName(p, f, col)
		if excluded[col] {
			p.add(f, "column %q is listed twice: list it once", col)
		}
		excluded[col] = true
	}

	keySeen := map[string]bool{}
	for j, col := range t.Key {
		f := fmt.Sprintf("%s.key[%d]", field, j)
		checkColumnName(p, f, col)
		switch {
		case keySeen[col]:
			p.add(f, "column %q is listed twice: list it once", col)
		case excluded[col]:
			p.add(f, "key column %q is also in exclude, but the key must be written to find "+
				"target rows: remove it from exclude", col)
		}
		keySeen[col] = true
	}

	validateRenames(p, field, t, excluded)
	for col, expr := range t.Transform {
		f := field + ".transform." + col
		checkColumnName(p, f, col)
		switch {
		case strings.TrimSpace(expr) == "":
			p.add(f, "missing expression: write a CEL expression such as new.%s, or remove it", col)
		case excluded[col]:
			p.add(f, "column %q is excluded, so its transform is never used: remove one of them", col)
		case keySeen[col]:
			p.add(f, "column %q is in tables[].key, and target rows are found by the source key "+
				"values, so a key column cannot be transformed: remove the transform", col)
		}
	}

	switch t.Truncate {
	case "hold", "apply", "ignore":
	default:
		p.invalidChoice(field+".truncate", t.Truncate, "hold", "apply", "ignore")
	}
}

// validateRenames checks that no renamed column is excluded and that no two source
// columns that the file names land on one target column. Columns the file does not name
// are checked against the catalog by preflight.
func validateRenames(p *problems, field string, t *Table, excluded map[string]bool) {
	targets := map[string]string{} // target column -> source column
	for _, col := range mentionedColumns(t) {
		if _, renamed := t.Columns[col]; !renamed && !excluded[col] {
			targets[col] = col
		}
	}

	for _, src := range sortedStrings(t.Columns) {
		dst := t.Columns[src]
		f := field + ".columns." + src
		checkColumnName(p, f, src)
		checkColumnName(p, f, dst)
		if excluded[src] {
			p.add(f, "column %q is both renamed and excluded: remove it from one of columns "+
				"and exclude", src)
			continue
		}
		if other, taken := targets[dst]; taken && other != src {
			p.add(f, "source columns %q and %q both map to target column %q: map each to its "+
				"own target column", other, src, dst)
			continue
		}
		targets[dst] = src
	}
}

// mentionedColumns returns the source columns that the table section names outside
// columns and exclude.
func mentionedColumns(t *Table) []string {
	cols := append([]string(nil), t.Key...)
	cols = append(cols, sortedStrings(t.Transform)...)
	if t.ActorColumn != "" {
		cols = append(cols, t.ActorColumn)
	}
	return cols
}

func (c *Config) validateApply(p *problems) {
	a := &c.Apply
	if a.BatchMaxEvents <= 0 {
		p.add("apply.batch_max_events", "invalid value %d: use a positive number of events, "+
			"such as %d", a.BatchMaxEvents, DefaultBatchMaxEvents)
	}
	checkNotNegative(p, "apply.batch_max_wait", a.BatchMaxWait, "0 commits without waiting")
	if a.OnExistingRow != "update" && a.OnExistingRow != "fail" {
		p.invalidChoice("apply.on_existing_row", a.OnExistingRow, "update", "fail")
	}
	switch a.OnMissingRow {
	case "insert", "skip", "fail":
	default:
		p.invalidChoice("apply.on_missing_row", a.OnMissingRow, "insert", "skip", "fail")
	}
	if a.OnMissingColumn != "hold" && a.OnMissingColumn != "ignore" {
		p.invalidChoice("apply.on_missing_column", a.OnMissingColumn, "hold", "ignore")
	}
}

func (c *Config) validateRules(p *problems) {
	names := map[string]int{}
	for i, r := range c.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		if strings.TrimSpace(r.Name) == "" {
			p.add(field+".name", "missing: name the rule, because decisions record it as the decider")
		} else if j, dup := names[r.Name]; dup {
			p.add(field+".name", "%q is already the name of rules[%d]: give each rule its own name", r.Name, j)
		} else {
			names[r.Name] = i
		}

		if strings.TrimSpace(r.When) == "" {
			p.add(field+".when", "missing: write a CEL condition such as \"op == 'delete'\"")
		}
		if !isVerdict(r.Action) {
			p.invalidChoice(field+".action", r.Action, "approve", "skip", "reject", "hold")
		}
		if r.Table != "" {
			c.checkConfiguredTable(p, field+".table", r.Table)
		}
	}
	if c.RuleCostLimit <= 0 {
		p.add("rule_cost_limit", "invalid value %d: use a positive number, such as %d",
			c.RuleCostLimit, DefaultRuleCostLimit)
	}
}

// checkConfiguredTable reports a table name that is invalid or not a configured source.
func (c *Config) checkConfiguredTable(p *problems, field, name string) {
	t, err := ParseTableName(name)
	if err != nil {
		p.add(field, "%v", err)
		return
	}
	if c.TableBySource(t) == nil {
		p.add(field, "%s is not one of the tables: use a source table listed under tables",
			FormatTableName(t))
	}
}

// TableBySource returns the table section of a source table, or nil.
func (c *Config) TableBySource(name change.TableName) *Table {
	for i := range c.Tables {
		if c.Tables[i].Source == name {
			return &c.Tables[i]
		}
	}
	return nil
}

func isVerdict(s string) bool {
	switch change.Verdict(s) {
	case change.Approve, change.Skip, change.Reject, change.Hold:
		return true
	}
	return false
}

func (c *Config) validateGuard(p *problems) {
	g := &c.Guard
	if g.MaxRowsPerTx < 0 {
		p.add("guard.max_rows_per_tx", "invalid value %d: use 0 (no limit) or a positive number", g.MaxRowsPerTx)
	}
	if g.MaxDeletesPerTx < 0 {
		p.add("guard.max_deletes_per_tx", "invalid value %d: use 0 (no limit) or a positive number",
			g.MaxDeletesPerTx)
	}
	switch g.Action {
	case "hold", "reject", "skip":
	default:
		p.invalidChoice("guard.action", g.Action, "hold", "reject", "skip")
	}

	b := &g.Burst
	if b.Factor < 0 {
		p.add("guard.burst.factor", "invalid value %d: use 0 (off) or a positive number, such as %d",
			b.Factor, DefaultBurstFactor)
	}
	if b.Window < 2*time.Minute {
		p.add("guard.burst.window", "invalid duration %s: use at least 2m, such as %s, because "+
			"the average is taken over whole minutes", b.Window, DefaultBurstWindow)
	}
	if b.MinChanges < 0 {
		p.add("guard.burst.min_changes", "invalid value %d: use 0 or more, such as %d",
			b.MinChanges, DefaultBurstMin)
	}
}

func (c *Config) validateLLM(p *problems) {
	l := &c.LLM
	if l.Enabled && l.BaseURL == "" {
		p.add("llm.base_url", "missing: set the OpenAI-compatible endpoint, including /v1, "+
			"or set llm.enabled to false")
	}
	if l.BaseURL != "" {
		checkHTTPURL(p, "llm.base_url", l.BaseURL)
	}
	if l.Enabled && strings.TrimSpace(l.Model) == "" {
		p.add("llm.model", "missing: set the model name, or set llm.enabled to false")
	}
	checkEnvName(p, "llm.api_key_env", l.APIKeyEnv)
	if l.Timeout <= 0 {
		p.add("llm.timeout", "invalid duration %s: use more than 0, such as %s", l.Timeout, DefaultLLMTimeout)
	}
	if !isVerdict(l.OnError) {
		p.invalidChoice("llm.on_error", l.OnError, "hold", "approve", "skip", "reject")
	}
	if l.MaxConcurrency <= 0 {
		p.add("llm.max_concurrency", "invalid value %d: use a positive number, such as %d",
			l.MaxConcurrency, DefaultLLMConcurrency)
	}
	if l.CacheSize < 0 {
		p.add("llm.cache_size", "invalid value %d: use 0 (no cache) or a positive number, such as %d",
			l.CacheSize, DefaultLLMCacheSize)
	}

	for i, ref := range l.Columns {
		field := fmt.Sprintf("llm.columns[%d]", i)
		table, _, err := ParseColumnRef(ref)
		if err != nil {
			p.add(field, "%v", err)
			continue
		}
		if c.TableBySource(table) == nil {
			p.add(field, "table %s is not one of the tables: use a column of a source table "+
				"listed under tables", FormatTableName(table))
		}
	}
}

// ParseColumnRef parses a column reference [schema.]table.column with the identifier
// rules of ParseTableName. A reference without a schema is in public.
func ParseColumnRef(s string) (change.TableName, string, error) {
	parts, err := splitQualifiedName(s)
	if err != nil {
		return change.TableName{}, "", fmt.Errorf("invalid column %q: %w", s, err)
	}
	switch len(parts) {
	case 2:
		return change.TableName{Schema: "public", Name: parts[0]}, parts[1], nil
	case 3:
		return change.TableName{Schema: parts[0], Name: parts[1]}, parts[2], nil
	}
	return change.TableName{}, "", fmt.Errorf("invalid column %q: write schema.table.column", s)
}

func (c *Config) validateAPI(p *problems) {
	a := &c.API
	host, port, err := net.SplitHostPort(a.Listen)
	switch {
	case err != nil:
		p.add("api.listen", "invalid address %q: use host:port, such as %s", a.Listen, DefaultListen)
	case !validPort(port):
		p.add("api.listen", "invalid port %q: use a number from 0 to 65535", port)
	case !a.Auth.Enabled() && !isLoopback(host):
		p.add("api.listen", "%s is not a loopback address and api.auth is not configured, so "+
			"anyone who reaches it could approve and undo changes: configure api.auth or listen "+
			"on 127.0.0.1", a.Listen)
	}

	auth := &a.Auth
	checkEnvName(p, "api.auth.jwt_secret_env", auth.JWTSecretEnv)
	if auth.JWTSecretEnv != "" && auth.JWKSURL != "" {
		p.add("api.auth", "both jwt_secret_env and jwks_url are set: use one of them")
	}
	if auth.JWKSURL != "" {
		checkHTTPURL(p, "api.auth.jwks_url", auth.JWKSURL)
	}
}

func validPort(port string) bool {
	n := 0
	for _, r := range port {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int(r-'0')
		if n > 65535 {
			return false
		}
	}
	return port != ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateLog(p *problems) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.invalidChoice("log.level", c.Log.Level, "debug", "info", "warn", "error")
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		p.invalidChoice("log.format", c.Log.Format, "json", "text")
	}
}

// checkIdentifier reports a name that PostgreSQL would reject or truncate. The name is
// used as written, quoted.
func checkIdentifier(p *problems, field, name string) {
	switch {
	case name == "":
		p.add(field, "missing: set a name")
	case len(name) > maxIdentifierLen:
		p.add(field, "name %q is %d bytes long: use at most %d bytes, because PostgreSQL "+
			"truncates longer names", name, len(name), maxIdentifierLen)
	case strings.ContainsRune(name, 0):
		p.add(field, "name %q contains a NUL byte, which PostgreSQL does not allow", name)
	}
}

// checkColumnName reports a column name that cannot exist in PostgreSQL.
func checkColumnName(p *problems, field, name string) {
	if name == "" {
		p.add(field, "empty column name: write the name as the catalog spells it")
		return
	}
	checkIdentifier(p, field, name)
}

func checkEnvName(p *problems, field, name string) {
	if name != "" && !validEnvName(name) {
		p.add(field, "invalid environment variable name %q: use letters, digits and "+
			"underscores, not starting with a digit", name)
	}
}

func validEnvName(name string) bool { return envNamePattern.MatchString(name) }

func checkHTTPURL(p *problems, field, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(field, "invalid URL %q: use an http or https URL such as https://host/v1", RedactURL(raw))
	}
}

func checkNotNegative(p *problems, field string, d time.Duration, zeroMeans string) {
	if d < 0 {
		p.add(field, "invalid duration %s: use 0 or more (%s)", d, zeroMeans)
	}
}

func fieldOr(field, fallback string) string {
	if field == "" {
		return fallback
	}
	return field
}
