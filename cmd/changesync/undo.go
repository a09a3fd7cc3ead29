package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/undo"
)

const undoUsage = `usage: changesync undo --config FILE SCOPE [--dry-run] [--force] --reason TEXT [--requestor NAME]

SCOPE is one of:
  --change ID
  --token TOKEN
  --thread ID
  --table TABLE --row-key KEY [--since TIME]
  --since TIME [--until TIME] [--tables a,b]

TIME is RFC 3339, such as 2024-05-01T14:00:00Z. The exit status is 1 when the undo is
rejected, such as for conflicts, and 2 for a wrong command line.`

// runUndoCommand parses the flags of `changesync undo`, runs the request and prints the
// plan or the result to stdout.
func runUndoCommand(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("undo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", os.Getenv("CHANGESYNC_CONFIG"),
		"path of the YAML configuration file (default: $CHANGESYNC_CONFIG)")
	changeID := fs.String("change", "", "undo the change with this change_events id")
	token := fs.String("token", "", "undo the change with this undo token")
	thread := fs.String("thread", "", "undo every change of this thread (source transaction)")
	table := fs.String("table", "", "with --row-key: the source or target table as schema.table, "+
		"or quoted as in the config, such as \"Mixed\".\"Case Table\"")
	rowKey := fs.String("row-key", "", "with --table: undo the synced changes of this row")
	since := fs.String("since", "", "undo changes synced at or after this RFC 3339 time")
	until := fs.String("until", "", "with --since alone: undo changes synced before this RFC 3339 time")
	tables := fs.String("tables", "", "with --since alone: comma-separated source or target tables")
	dryRun := fs.Bool("dry-run", false, "print the plan and write nothing")
	force := fs.Bool("force", false, "overwrite target values that changed since the sync")
	reason := fs.String("reason", "", "why the changes are undone (required unless --dry-run)")
	requestor := fs.String("requestor", defaultRequestor(), "who asks for the undo")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "%s\n\nflags:\n%s", undoUsage, flagHelp(fs))
			return nil
		}
		return &usageError{fmt.Sprintf("undo: %v\n\n%s", err, undoUsage)}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("undo: unexpected argument %q: undo takes only flags", fs.Arg(0))}
	}
	if *path == "" {
		return &usageError{"undo: missing --config FILE (or set CHANGESYNC_CONFIG)"}
	}

	req := undo.Request{
		Table: *table, RowKey: *rowKey, DryRun: *dryRun, Force: *force,
		Reason: *reason, Requestor: *requestor,
	}
	if err := parseUndoScope(&req, *changeID, *token, *thread, *since, *until, *tables); err != nil {
		return err
	}

	a, err := newApp(*path)
	if err != nil {
		return err
	}
	return runUndo(ctx, a, req, out)
}

// parseUndoScope fills the ids and times of req from their flag values.
func parseUndoScope(req *undo.Request, changeID, token, thread, since, until, tables string) error {
	var err error
	if req.ChangeID, err = parseID("--change", changeID); err != nil {
		return err
	}
	if req.UndoToken, err = parseID("--token", token); err != nil {
		return err
	}
	if req.ThreadID, err = parseID("--thread", thread); err != nil {
		return err
	}
	if req.Since, err = parseTime("--since", since); err != nil {
		return err
	}
	if req.Until, err = parseTime("--until", until); err != nil {
		return err
	}
	for _, t := range splitTables(tables) {
		if t = strings.TrimSpace(t); t != "" {
			req.Tables = append(req.Tables, t)
		}
	}
	return nil
}

// splitTables splits a comma-separated list of table names at the commas outside double
// quotes, so that a quoted name may contain a comma.
func splitTables(list string) []string {
	var names []string
	quoted, start := false, 0
	for i, c := range list {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			names = append(names, list[start:i])
			start = i + 1
		}
	}
	return append(names, list[start:])
}

func parseID(flagName, value string) (uuid.UUID, error) {
	if value == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(value)
	if err != nil {
		return uuid.Nil, &usageError{fmt.Sprintf("undo: %s %q is not a UUID: %v", flagName, value, err)}
	}
	if id == uuid.Nil {
		return uuid.Nil, &usageError{fmt.Sprintf("undo: %s is the nil UUID, which no change has", flagName)}
	}
	return id, nil
}

func parseTime(flagName, value string) (time.Time, error) {
	if value == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return time.Time{}, &usageError{fmt.Sprintf("undo: %s %q is not an RFC 3339 time "+
			"such as 2024-05-01T14:00:00Z: %v", flagName, value, err)}
	}
	return t, nil
}

// defaultRequestor is the name of the OS user, recorded when --requestor is not given.
func defaultRequestor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// runUndo runs one undo request against the configured target and prints its outcome.
func runUndo(ctx context.Context, a *app, req undo.Request, out io.Writer) error {
	st, err := store.Open(ctx, a.cfg.Target.URL, a.cfg.Target.Schema)
	if err != nil {
		return err
	}
	defer st.Close()
	ex, err := undo.New(undo.Config{Store: st, Tables: a.tableSpecs()}, undo.WithLogger(a.log))
	if err != nil {
		return err
	}

	res, err := ex.Execute(ctx, req)
	if errors.Is(err, undo.ErrInvalidRequest) {
		// A request the flags got wrong, such as two scopes or no reason.
		return &usageError{fmt.Sprintf("undo: %v\n\n%s", err, undoUsage)}
	}
	if err != nil && !undo.IsConflict(err) {
		return err
	}
	printUndoResult(out, &res)
	if err != nil {
		return fmt.Errorf("undo rejected: %d conflicts (listed above); rerun with --force to "+
			"overwrite them: %w", len(res.Conflicts), err)
	}
	return nil
}

// printUndoResult writes the plan or the outcome of a request as a table for people.
func printUndoResult(out io.Writer, res *undo.Result) {
	fmt.Fprintf(out, "undo request %s: %s", res.RequestID, res.Status)
	if res.Forced {
		fmt.Fprint(out, " (forced over conflicts)")
	}
	fmt.Fprintf(out, ", %d changes\n", len(res.Changes))

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(res.Changes) > 0 {
		fmt.Fprintln(w, "\nCHANGE\tOP\tTARGET TABLE\tROW KEY\tUNDO\tCOLUMNS")
		for _, c := range res.Changes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ChangeID, c.Op, c.TargetTable, c.RowKey,
				c.Action, columnsText(c.Diff))
		}
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintln(w, "\nSKIPPED\tOP\tTABLE\tROW KEY\tREASON")
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ChangeID, s.Op, s.Table, s.RowKey, s.Reason)
		}
	}
	if len(res.Conflicts) > 0 {
		fmt.Fprintln(w, "\nCONFLICT\tTABLE\tROW KEY\tCOLUMN\tEXPECTED\tFOUND\tREASON")
		for _, c := range res.Conflicts {
			reason := c.Reason
			if c.Blocking {
				reason += " (force cannot overwrite it)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ChangeID, c.Table, c.RowKey, c.Column,
				valueText(c.Expected), valueText(c.Found), reason)
		}
	}
	_ = w.Flush()
}

// columnsText lists the columns an undo writes as column: current → restored.
func columnsText(diff map[string]undo.ColumnChange) string {
	parts := make([]string, 0, len(diff))
	for col, d := range diff {
		parts = append(parts, col+": "+valueText(d.Old)+" → "+valueText(d.New))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func valueText(v *string) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *v)
}
