package validate

import (
	"fmt"
	"strconv"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// BulkDecider is the DecidedBy of the bulk guard's decisions.
const BulkDecider = "guard:bulk"

// tableCount is the number of row changes of one table in one transaction. A TRUNCATE is
// not a row change and is not counted.
type tableCount struct {
	table   change.TableName
	rows    int // inserts, updates and deletes
	deletes int
}

// countRows counts the row changes of a transaction per table for which keep is true,
// in the order in which each table first appears. A row changed twice counts twice.
func countRows(tx *change.Tx, keep func(change.TableName) bool) []tableCount {
	var counts []tableCount
	index := map[change.TableName]int{}
	for i := range tx.Events {
		ev := &tx.Events[i]
		if ev.Relation == nil || ev.Op == change.OpTruncate || !keep(ev.Relation.Table) {
			continue
		}
		j, ok := index[ev.Relation.Table]
		if !ok {
			j = len(counts)
			index[ev.Relation.Table] = j
			counts = append(counts, tableCount{table: ev.Relation.Table})
		}
		counts[j].rows++
		if ev.Op == change.OpDelete {
			counts[j].deletes++
		}
	}
	return counts
}

// Guard is the bulk-change guard. It decides a whole transaction that changes more rows
// of one table than MaxRowsPerTx, or deletes more rows of one table than MaxDeletesPerTx.
type Guard struct {
	maxRows    int
	maxDeletes int
	action     change.Verdict
}

// NewGuard returns the bulk guard of cfg. An empty action means hold.
func NewGuard(cfg config.Guard) (*Guard, error) {
	g := &Guard{maxRows: cfg.MaxRowsPerTx, maxDeletes: cfg.MaxDeletesPerTx, action: change.Verdict(cfg.Action)}
	switch g.action {
	case "":
		g.action = change.Hold
	case change.Hold, change.Reject, change.Skip:
	default:
		return nil, fmt.Errorf("guard action %q is invalid: use hold, reject or skip", cfg.Action)
	}
	if g.maxRows < 0 || g.maxDeletes < 0 {
		return nil, fmt.Errorf("guard limits %d rows and %d deletes per transaction are invalid: "+
			"use 0 (no limit) or a positive number", g.maxRows, g.maxDeletes)
	}
	return g, nil
}

// check returns the decision for every event of tx and the alert to raise when a table
// of tx is over a limit, and nil when none is.
func (g *Guard) check(tx *change.Tx, counts []tableCount) (change.Decision, *Alert) {
	for _, c := range counts {
		count, limit, format := 0, 0, ""
		switch {
		case g.maxRows > 0 && c.rows > g.maxRows:
			count, limit, format = c.rows, g.maxRows, "changes %s rows of %s, more than guard.max_rows_per_tx %d"
		case g.maxDeletes > 0 && c.deletes > g.maxDeletes:
			count, limit, format = c.deletes, g.maxDeletes, "deletes %s rows of %s, more than guard.max_deletes_per_tx %d"
		default:
			continue
		}

		// A transaction in parts is decided at the part that crosses the limit, before
		// its total is known.
		counted, changes := strconv.Itoa(count), strconv.Itoa(len(tx.Events))+" changes"
		if tx.More {
			counted = "at least " + counted
		}
		if tx.More || tx.FirstSeq > 0 {
			changes = "changes"
		}
		reason := fmt.Sprintf("transaction %d "+format+", so the guard gives each of its %s the verdict %s",
			tx.Xid, counted, c.table, limit, changes, g.action)
		dec := change.Decision{Verdict: g.action, Reason: reason, DecidedBy: BulkDecider}
		alert := &Alert{
			Kind: AlertBulk, Table: c.table, Xid: tx.Xid, ThreadID: tx.ThreadID,
			CommitLSN: tx.CommitLSN, Time: tx.CommitTime, Count: count, Limit: limit,
			Verdict: g.action, Message: reason,
		}
		return dec, alert
	}
	return change.Decision{}, nil
}
