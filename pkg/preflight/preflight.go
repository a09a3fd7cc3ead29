// Package preflight runs the checks of `changesync check`: it connects to the source and
// the target and reports, one result per check, whether the configuration can run and
// how to fix what cannot. It only reads; it creates and changes nothing.
package preflight

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/config"
)

// connectTimeout bounds each connection attempt, so that an unreachable server fails its
// check instead of hanging the command.
const connectTimeout = 10 * time.Second

// Result is the outcome of one check.
type Result struct {
	Name string
	// OK is false for a problem that keeps changesync from running correctly.
	OK bool
	// Warn marks a passed check that still deserves a look, such as a column type that
	// may not fit every value.
	Warn   bool
	Detail string
	// Fix is the command or setting that resolves a failure or a warning.
	Fix string
}

// Report is the list of check results in the order they ran.
type Report struct {
	Results []Result
}

// OK reports whether every check passed. Warnings do not count as failures.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if !res.OK {
			return false
		}
	}
	return true
}

func (r *Report) pass(name, detail string) {
	r.Results = append(r.Results, Result{Name: name, OK: true, Detail: detail})
}

func (r *Report) warn(name, detail, fix string) {
	r.Results = append(r.Results, Result{Name: name, OK: true, Warn: true, Detail: detail, Fix: fix})
}

func (r *Report) fail(name, detail, fix string) {
	r.Results = append(r.Results, Result{Name: name, Detail: detail, Fix: fix})
}

// Check runs every check that the configuration allows. A check that depends on an
// earlier failed one, such as a table check after a failed source connection, is left
// out of the report, and the failed check's detail notes that the later checks did not run.
func Check(ctx context.Context, cfg *config.Config) *Report {
	c := &checker{
		cfg: cfg, report: &Report{}, sourceTables: map[int]*sourceTable{},
		databases: map[string]string{},
	}

	if src := c.connect(ctx, "source", cfg.Source.URL); src != nil {
		defer src.Close(context.WithoutCancel(ctx))
		c.checkSource(ctx, src)
	}
	if dst := c.connect(ctx, "target", cfg.Target.URL); dst != nil {
		defer dst.Close(context.WithoutCancel(ctx))
		c.checkTarget(ctx, dst)
	}
	c.checkSpillDir()
	return c.report
}

// checker carries what the source checks learn to the target checks.
type checker struct {
	cfg          *config.Config
	report       *Report
	sourceTables map[int]*sourceTable // by index into cfg.Tables; missing when not found
	// databases identifies the database of each connected side ("source", "target") by
	// system identifier and name, so that the same database behind two URLs is noticed.
	databases map[string]string
}

// sameDatabase reports whether the source and the target are one database.
func (c *checker) sameDatabase() bool {
	src, ok := c.databases["source"]
	return ok && src == c.databases["target"]
}

// connect opens a connection and reports it, or reports why it failed and returns nil.
func (c *checker) connect(ctx context.Context, side, url string) *pgx.Conn {
	name := side + " connection"
	connCfg, err := pgx.ParseConfig(url)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("invalid connection string %s", config.RedactURL(url)),
			"fix "+side+".url")
		return nil
	}
	connCfg.RuntimeParams["application_name"] = "changesync check"

	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("%v; the %s checks did not run", err, side),
			fmt.Sprintf("check %s.url (%s), that the server runs and that it accepts this "+
				"role from this host (pg_hba.conf)", side, config.RedactURL(url)))
		return nil
	}

	var version, user, database, system string
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_user,
		current_database(), (SELECT system_identifier FROM pg_control_system())::text`).
		Scan(&version, &user, &database, &system)
	if err != nil {
		c.report.fail(name, fmt.Sprintf("read server version: %v", err), "")
		_ = conn.Close(ctx)
		return nil
	}
	c.report.pass(name, fmt.Sprintf("PostgreSQL %s, database %s, role %s", version, database, user))
	c.databases[side] = system + "/" + database
	return conn
}

// Write prints the report as an aligned plain-text table, each fix on its own line
// below its check, and a closing line with the counts.
func (r *Report) Write(w io.Writer) error {
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Name))
	}

	var b strings.Builder
	var passed, warned, failed int
	for _, res := range r.Results {
		status := "ok"
		switch {
		case !res.OK:
			status = "FAIL"
			failed++
		case res.Warn:
			status = "warn"
			warned++
		default:
			passed++
		}
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", status, width, res.Name, res.Detail)
		if res.Fix != "" {
			fmt.Fprintf(&b, "%-4s  %-*s  fix: %s\n", "", width, "", res.Fix)
		}
	}

	fmt.Fprintf(&b, "%s: %d ok, %s, %d failed", plural(len(r.Results), "check"), passed,
		plural(warned, "warning"), failed)
	if failed > 0 {
		b.WriteString(": fix the failures and run check again\n")
	} else {
		b.WriteString(": ready to run\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural formats a count with a noun that takes an s unless the count is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
