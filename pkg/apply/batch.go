package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
)

// Result describes the effect of one applied event on the target.
type Result struct {
	Status change.Status // synced, skipped, held or failed
	Reason string        // the reason a change was not synced as is
	Target change.TableName
	RowKey string // the source row key, in change_events.row_key form
	// TargetKey is the JSON array of the target key values, and TargetKeyColumns the
	// names of their target columns, in the same order.
	TargetKey        []byte
	TargetKeyColumns []string
	// Diff is {column: {"old": …, "new": …}} over exactly the target columns written, or
	// nil when nothing was written.
	Diff  []byte
	Actor string
	// Op is the write the target got, which can differ from the change's: an INSERT of
	// an existing row is written as an UPDATE, an UPDATE of a missing row as an INSERT.
	// It is empty when the change's own operation was written.
	Op change.Op
}

// rowState is the batch's copy of a target row. It is read and locked at first touch,
// then kept up to date with the writes the batch queued.
type rowState struct {
	exists bool
	values []change.Value // indexed like targetTable.Columns
}

// write is one queued statement and the row count it must affect.
type write struct {
	sql      string
	args     [][]byte
	what     string
	wantRows int64
}

// Batch applies events inside one target transaction. Target rows are locked and read at
// first touch; writes are queued and sent together by Flush.
type Batch struct {
	a      *Applier
	tx     pgx.Tx
	rows   map[string]*rowState
	queued []write
	// truncated records the source TRUNCATE messages already applied, by truncateGroup.
	truncated map[*(*change.Relation)]bool
	// releasing applies a TRUNCATE whatever the table's policy, for a held TRUNCATE that
	// a person approved.
	releasing bool
}

// ApplyReleased is ApplyIsolated for a held change that a person approved: a TRUNCATE is
// applied even when the table's policy holds it.
func (b *Batch) ApplyReleased(ctx context.Context, ev *change.Event) (Result, error) {
	b.releasing = true
	defer func() { b.releasing = false }()
	return b.ApplyIsolated(ctx, ev)
}

// truncateGroup identifies the source TRUNCATE message of a truncate event: the events
// of one message share their Truncated slice.
func truncateGroup(ev *change.Event) *(*change.Relation) {
	if len(ev.Truncated) == 0 {
		return nil
	}
	return &ev.Truncated[0]
}

// Apply maps one event to its target and queues the writes that bring the target row to
// the event's new values. The returned error is a failure of the target connection; a
// change that cannot be applied as is comes back as a Result with status failed, skipped
// or held, and with a reason.
func (b *Batch) Apply(ctx context.Context, ev *change.Event) (Result, error) {
	p, err := b.a.plan(ev.Relation)
	if err != nil {
		return Result{Status: change.StatusFailed, Reason: err.Error()}, nil
	}
	res := Result{Target: p.target.Name, Actor: b.a.Actor(ev)}
	if col := p.missingColumnValue(ev); col != "" && b.a.policy.OnMissingColumn == MissingColumnHold &&
		!b.releasing {
		res.Status = change.StatusHeld
		res.Reason = fmt.Sprintf("source column %q has no column in target table %s (apply.on_missing_column: "+
			"hold): add the column to the target, or exclude it, then release the change", col, p.target.Name)
		return res, nil
	}
	tev, err := transformEvent(ctx, p, ev)
	if err != nil {
		return transformFailure(p, ev, err), nil
	}
	ev = tev

	switch {
	case p.keyless && ev.Op != change.OpTruncate:
		err = b.applyKeyless(ctx, p, ev, &res)
	case ev.Op == change.OpInsert:
		err = b.insert(ctx, p, ev, &res)
	case ev.Op == change.OpUpdate:
		err = b.update(ctx, p, ev, &res)
	case ev.Op == change.OpDelete:
		err = b.delete(ctx, p, ev, &res)
	case ev.Op == change.OpTruncate:
		err = b.truncate(p, ev, &res)
	default:
		res.Status, res.Reason = change.StatusFailed, fmt.Sprintf("unknown operation %q", ev.Op)
	}
	var invalid *invalidChangeError
	if errors.As(err, &invalid) {
		return Result{
			Status: change.StatusFailed, Reason: invalid.Error(), Target: p.target.Name,
			RowKey: res.RowKey,
		}, nil
	}
	return res, err
}

// invalidChangeError is a change that cannot be applied, such as a tuple without its key.
type invalidChangeError struct{ err error }

func (e *invalidChangeError) Error() string { return e.err.Error() }
func (e *invalidChangeError) Unwrap() error { return e.err }

func (b *Batch) insert(ctx context.Context, p *plan, ev *change.Event, res *Result) error {
	key, err := p.keyValues(ev.New)
	if err != nil {
		return &invalidChangeError{err}
	}
	res.RowKey = change.RowKey(key)
	row, err := b.row(ctx, p, key)
	if err != nil {
		return err
	}
	if row.exists {
		if b.a.policy.OnExistingRow == ExistingRowFail {
			res.Status = change.StatusFailed
			res.Reason = "INSERT found the key already on the target (on_existing_row: fail)"
			return nil
		}
		return b.updateRow(p, row, key, key, ev.New, res)
	}
	return b.insertRow(p, row, key, ev.New, res)
}

func (b *Batch) update(ctx context.Context, p *plan, ev *change.Event, res *Result) error {
	newTuple := fillUnchanged(ev.New, ev.Old)
	newKey, err := p.keyValues(newTuple)
	if err != nil {
		return &invalidChangeError{err}
	}
	oldKey := newKey
	if ev.Old != nil {
		if oldKey, err = p.keyValues(ev.Old); err != nil {
			return &invalidChangeError{err}
		}
	}
	res.RowKey = change.RowKey(newKey)

	row, err := b.row(ctx, p, oldKey)
	if err != nil {
		return err
	}
	moved := change.RowKey(oldKey) != res.RowKey
	if moved {
		dest, err := b.row(ctx, p, newKey)
		if err != nil {
			return err
		}
		if dest.exists {
			res.Status = change.StatusFailed
			res.Reason = fmt.Sprintf("UPDATE moves the key from %s to %s, but the target already "+
				"has a row with the new key", change.RowKey(oldKey), res.RowKey)
			return nil
		}
	}
	if row.exists {
		return b.updateRow(p, row, oldKey, newKey, ev.New, res)
	}

	switch b.a.policy.OnMissingRow {
	case MissingRowSkip:
		res.Status, res.Reason = change.StatusSkipped, "UPDATE found no target row (on_missing_row: skip)"
		return nil
	case MissingRowFail:
		res.Status, res.Reason = change.StatusFailed, "UPDATE found no target row (on_missing_row: fail)"
		return nil
	}
	for _, c := range p.cols {
		if !newTuple[c.source].Known() {
			res.Status = change.StatusFailed
			res.Reason = fmt.Sprintf("UPDATE found no target row and cannot insert one: column %q "+
				"is an unchanged TOAST value the source did not send", p.rel.Columns[c.source].Name)
			return nil
		}
	}
	dest, err := b.row(ctx, p, newKey)
	if err != nil {
		return err
	}
	return b.insertRow(p, dest, newKey, newTuple, res)
}

func (b *Batch) delete(ctx context.Context, p *plan, ev *change.Event, res *Result) error {
	key, err := p.keyValues(ev.Old)
	if err != nil {
		return &invalidChangeError{err}
	}
	res.RowKey = change.RowKey(key)
	row, err := b.row(ctx, p, key)
	if err != nil {
		return err
	}
	res.Status = change.StatusSynced
	if !row.exists {
		res.Reason = "DELETE found no target row; nothing was deleted"
		return nil
	}

	diff := newDiff()
	for i, c := range p.target.Columns {
		if !c.Generated && row.values[i].Known() {
			diff.add(c.Name, row.values[i], change.NullValue())
		}
	}
	b.queue(p.deleteSQL(), params(key), 1, p.deleteWhat)
	row.exists, row.values = false, nil
	res.Diff, res.TargetKey, res.TargetKeyColumns = diff.bytes(), keyJSON(key), p.keyColumnNames()
	return nil
}

// truncate applies a TRUNCATE per the table's policy. The tables of one source TRUNCATE
// whose policy is apply are truncated by one statement, with RESTART IDENTITY when the
// source used it, so that foreign keys between them do not stop it. CASCADE is not
// passed on, because on the target it could empty tables that changesync does not sync.
func (b *Batch) truncate(p *plan, ev *change.Event, res *Result) error {
	policy := p.spec.Truncate
	if b.releasing {
		policy = "apply"
	}
	switch policy {
	case "apply":
		if group := truncateGroup(ev); !b.truncated[group] {
			b.truncated[group] = true
			rels := ev.Truncated
			if len(rels) == 0 {
				rels = []*change.Relation{ev.Relation}
			}
			var names []string
			for _, rel := range rels {
				other, err := b.a.plan(rel)
				if err != nil || (other.spec.Truncate != "apply" && !b.releasing) {
					continue
				}
				if name := other.target.Name.Sanitize(); !slices.Contains(names, name) {
					names = append(names, name)
				}
				b.forgetTable(other.target.Name)
			}
			sql := "TRUNCATE " + strings.Join(names, ", ")
			if ev.TruncateRestart {
				sql += " RESTART IDENTITY"
			}
			b.queue(sql, nil, -1, "truncate "+strings.Join(names, ", "))
		}
		// An empty diff gives the truncate its sync_log row, so the log of the target
		// table shows when it was emptied.
		res.Status, res.Diff = change.StatusSynced, []byte("{}")
	case "ignore":
		res.Status, res.Reason = change.StatusSkipped, "TRUNCATE is ignored (truncate: ignore)"
	default:
		res.Status, res.Reason = change.StatusHeld, "TRUNCATE is held for a person to decide (truncate: hold)"
	}
	return nil
}

// insertRow queues an INSERT of every mapped column of tuple.
func (b *Batch) insertRow(p *plan, row *rowState, key []change.Value, tuple change.Tuple, res *Result) error {
	var colsBuf [32]int
	cols := colsBuf[:0]
	vals := make([]change.Value, 0, len(p.cols))
	diff := newDiff()
	row.values = make([]change.Value, len(p.target.Columns))
	for j, c := range p.cols {
		v := tuple[c.source]
		if !v.Known() {
			continue
		}
		cols = append(cols, j)
		vals = append(vals, v)
		diff.add(c.target.Name, change.NullValue(), v)
		row.values[p.target.byName[c.target.Name]] = v
	}
	row.exists = true

	b.queue(p.insertSQL(cols), params(vals), 1, p.insertWhat)
	res.Status, res.Diff, res.TargetKey = change.StatusSynced, diff.bytes(), keyJSON(key)
	res.TargetKeyColumns = p.keyColumnNames()
	res.Op = change.OpInsert
	return nil
}

// updateRow queues an UPDATE of the columns whose new value differs from the target
// row. Unchanged TOAST values are never written, and identity columns are never updated.
func (b *Batch) updateRow(p *plan, row *rowState, oldKey, newKey []change.Value, tuple change.Tuple,
	res *Result,
) error {
	var colsBuf [32]int
	cols := colsBuf[:0]
	var vals []change.Value
	diff := newDiff()
	for j, c := range p.cols {
		v := tuple[c.source]
		if !v.Known() || c.target.IdentityAlways {
			continue
		}
		i := p.target.byName[c.target.Name]
		if row.values[i].Equal(v) {
			continue
		}
		if vals == nil {
			// Sized for the key values too, which follow for the WHERE clause.
			vals = make([]change.Value, 0, len(p.cols)+len(oldKey))
		}
		cols = append(cols, j)
		vals = append(vals, v)
		diff.add(c.target.Name, row.values[i], v)
		row.values[i] = v
	}
	res.Status, res.TargetKey, res.TargetKeyColumns = change.StatusSynced, keyJSON(newKey), p.keyColumnNames()
	res.Op = change.OpUpdate
	moved := change.RowKey(oldKey) != change.RowKey(newKey)
	if moved {
		b.moveRow(p, row, newKey)
	}
	if len(cols) == 0 {
		return nil
	}

	b.queue(p.updateSQL(cols), params(append(vals, oldKey...)), 1, p.updateWhat)
	res.Diff = diff.bytes()
	return nil
}

// moveRow records in the cache that row now lives under newKey.
func (b *Batch) moveRow(p *plan, row *rowState, newKey []change.Value) {
	dest := &rowState{exists: true, values: row.values}
	b.rows[rowID(p.target.Name, newKey)] = dest
	row.exists, row.values = false, nil
}

// fillUnchanged returns the new tuple with unchanged TOAST values taken from the old
// tuple where it has them (replica identity FULL). The result is used to match and to
// insert rows, never to decide which columns an UPDATE writes.
func fillUnchanged(newTuple, oldTuple change.Tuple) change.Tuple {
	if oldTuple == nil {
		return newTuple
	}
	var filled change.Tuple
	for i, v := range newTuple {
		if v.Kind != change.Unchanged || i >= len(oldTuple) || !oldTuple[i].Known() {
			continue
		}
		if filled == nil {
			filled = append(change.Tuple(nil), newTuple...)
		}
		filled[i] = oldTuple[i]
	}
	if filled == nil {
		return newTuple
	}
	return filled
}

func (b *Batch) queue(sql string, args [][]byte, wantRows int64, what string) {
	b.queued = append(b.queued, write{sql: sql, args: args, what: what, wantRows: wantRows})
}

// Flush sends the queued writes in one round trip and checks that each affected the
// rows it had to. Statements run prepared, so the target parses and plans each
// statement shape once per connection rather than once per row.
func (b *Batch) Flush(ctx context.Context) error {
	if len(b.queued) == 0 {
		return nil
	}
	queued := b.queued
	b.queued = nil
	var batch pgconn.Batch
	for _, w := range queued {
		name, err := b.prepare(ctx, w.sql)
		if err != nil {
			return fmt.Errorf("%s: prepare: %w", w.what, err)
		}
		if name == "" {
			batch.ExecParams(w.sql, w.args, nil, nil, nil)
		} else {
			batch.ExecPrepared(name, w.args, nil, nil)
		}
	}
	results, err := b.tx.Conn().PgConn().ExecBatch(ctx, &batch).ReadAll()
	for i, r := range results {
		if r.Err != nil {
			return fmt.Errorf("%s: %w", queued[i].what, r.Err)
		}
		if got := r.CommandTag.RowsAffected(); queued[i].wantRows >= 0 && got != queued[i].wantRows {
			return fmt.Errorf("%s: changed %d rows, want %d: the row changed outside its lock",
				queued[i].what, got, queued[i].wantRows)
		}
	}
	if err != nil {
		return fmt.Errorf("send target writes: %w", err)
	}
	return nil
}

// prepare returns the name of sql prepared on the batch's connection, preparing it on
// first use there. It returns "" once the applier has seen maxPrepared statement shapes,
// which bounds the server memory that tables with many column subsets could take.
func (b *Batch) prepare(ctx context.Context, sql string) (string, error) {
	name, ok := b.a.statementName(sql)
	if !ok {
		return "", nil
	}
	// pgx returns the cached description without a round trip when this connection
	// already prepared name with the same text.
	if _, err := b.tx.Conn().Prepare(ctx, name, sql); err != nil {
		return "", err
	}
	return name, nil
}

func placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", first+i)
	}
	return b.String()
}

// params turns values into text-format parameters: nil for NULL.
func params(vals []change.Value) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if v.Kind == change.Text {
			out[i] = []byte(v.Text)
		}
	}
	return out
}

// ApplyIsolated applies ev and sends its writes at once inside a savepoint. When the
// target rejects them for the data (see IsTargetRejection), it rolls back to the
// savepoint, drops the cached rows so that they are read again, and returns the change
// as failed with the target's error as the reason. Other errors are returned.
func (b *Batch) ApplyIsolated(ctx context.Context, ev *change.Event) (Result, error) {
	if err := b.Flush(ctx); err != nil {
		return Result{}, err
	}
	if _, err := b.tx.Exec(ctx, "SAVEPOINT changesync_change"); err != nil {
		return Result{}, fmt.Errorf("set savepoint: %w", err)
	}
	res, err := b.Apply(ctx, ev)
	if err == nil {
		err = b.Flush(ctx)
	}
	if err == nil {
		if _, err := b.tx.Exec(ctx, "RELEASE SAVEPOINT changesync_change"); err != nil {
			return Result{}, fmt.Errorf("release savepoint: %w", err)
		}
		return res, nil
	}
	if !IsTargetRejection(err) {
		return Result{}, err
	}
	b.queued = nil
	if _, rbErr := b.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT changesync_change"); rbErr != nil {
		return Result{}, fmt.Errorf("roll back to savepoint after %w: %w", err, rbErr)
	}
	clear(b.rows)
	clear(b.truncated)
	failed := Result{Status: change.StatusFailed, Reason: "the target rejected the change: " + err.Error()}
	if p, planErr := b.a.plan(ev.Relation); planErr == nil {
		failed.Target = p.target.Name
	}
	failed.RowKey, _ = b.a.RowKey(ev)
	return failed, nil
}

// IsTargetRejection reports whether err is the target rejecting a change for its data or
// its schema, so that retrying the same change cannot succeed. These are the SQLSTATE
// classes 0A (an unsupported feature, such as a TRUNCATE of a referenced table), 22 (a
// data exception), 23 (a constraint violation) and P0 (an error raised by a trigger).
func IsTargetRejection(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "0A", "22", "23", "P0":
		return true
	}
	return false
}

// ForgetRows drops the cached target rows after Flush, so that a batch that goes on
// through many parts keeps only the rows of the current part in memory. Rows touched
// again are read again, under the locks the transaction already holds.
func (b *Batch) ForgetRows() {
	clear(b.rows)
}

// applyKeyless applies a change of a table without any key. An INSERT adds a row. An
// UPDATE or a DELETE changes one row whose mapped columns all equal the old values as
// text, so exactly one of identical rows changes per source change. An UPDATE or DELETE
// is sent at once, because the row count it affects is the only sign that the row exists.
func (b *Batch) applyKeyless(ctx context.Context, p *plan, ev *change.Event, res *Result) error {
	table := p.target.Name.Sanitize()
	if ev.Op == change.OpInsert {
		var cols []string
		var vals []change.Value
		diff := newDiff()
		for _, c := range p.cols {
			if v := ev.New[c.source]; v.Known() {
				cols = append(cols, pgx.Identifier{c.target.Name}.Sanitize())
				vals = append(vals, v)
				diff.add(c.target.Name, change.NullValue(), v)
			}
		}
		b.queue("INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") VALUES ("+
			placeholders(1, len(vals))+")", params(vals), 1, "insert into "+p.target.Name.String())
		res.Status, res.Diff, res.Op = change.StatusSynced, diff.bytes(), change.OpInsert
		return nil
	}

	old, err := p.keyValues(ev.Old)
	if err != nil {
		return &invalidChangeError{err}
	}
	match := func(first int) string {
		var match strings.Builder
		for j, c := range p.keyCol {
			if j > 0 {
				match.WriteString(" AND ")
			}
			match.WriteString(pgx.Identifier{c.Name}.Sanitize())
			fmt.Fprintf(&match, "::text IS NOT DISTINCT FROM $%d", first+j)
		}
		return match.String()
	}
	one := func(first int) string {
		return "ctid = (SELECT ctid FROM " + table + " WHERE " + match(first) + " LIMIT 1 FOR UPDATE)"
	}

	diff := newDiff()
	var sql, what string
	var args [][]byte
	if ev.Op == change.OpDelete {
		for j, c := range p.keyCol {
			diff.add(c.Name, old[j], change.NullValue())
		}
		sql, args = "DELETE FROM "+table+" WHERE "+one(1), params(old)
		what = "delete from " + p.target.Name.String()
	} else {
		newTuple := fillUnchanged(ev.New, ev.Old)
		var sets []string
		var vals []change.Value
		for j, c := range p.cols {
			v := newTuple[c.source]
			if !v.Known() || sameValue(v, old[j]) {
				continue
			}
			vals = append(vals, v)
			sets = append(sets, fmt.Sprintf("%s = $%d", pgx.Identifier{c.target.Name}.Sanitize(), len(vals)))
			diff.add(c.target.Name, old[j], v)
		}
		if len(sets) == 0 {
			// Nothing to write, but a missing row is still reported.
			sql, args = "SELECT 1 FROM "+table+" WHERE "+match(1)+" LIMIT 1 FOR UPDATE", params(old)
			what = "lock a row of " + p.target.Name.String()
		} else {
			sql, args = "UPDATE "+table+" SET "+strings.Join(sets, ", ")+" WHERE "+one(len(vals)+1),
				params(append(vals, old...))
			what = "update " + p.target.Name.String()
		}
	}

	n, err := b.execNow(ctx, sql, args, what)
	if err != nil {
		return err
	}
	if n == 0 {
		b.keylessRowMissing(p, ev, res)
		return nil
	}
	res.Status, res.Diff = change.StatusSynced, diff.bytes()
	return nil
}

// keylessRowMissing records an UPDATE or DELETE of a table without any key that matched no
// target row. Without a key, a row deleted on the target and a row whose values differ
// there look the same. So an UPDATE never inserts its row, because a differing row would
// then be duplicated. The change is skipped under on_missing_row: skip and failed otherwise.
func (b *Batch) keylessRowMissing(p *plan, ev *change.Event, res *Result) {
	policy := b.a.policy.OnMissingRow
	res.Status = change.StatusFailed
	if policy == MissingRowSkip {
		res.Status = change.StatusSkipped
	}
	notInserted := ""
	if ev.Op == change.OpUpdate {
		notInserted = ", so no row is inserted in its place"
	}
	res.Reason = fmt.Sprintf("%s found no row of target table %s whose mapped columns all equal "+
		"the change's old values (on_missing_row: %s), so nothing was written. The row is missing "+
		"on the target or differs there, and without a key changesync cannot tell which%s. "+
		"Compare the target table with the source and fix the row by hand.",
		strings.ToUpper(string(ev.Op)), p.target.Name, policy, notInserted)
}

// execNow flushes the queued writes, then executes sql and returns the number of rows it
// affected.
func (b *Batch) execNow(ctx context.Context, sql string, args [][]byte, what string) (int64, error) {
	if err := b.Flush(ctx); err != nil {
		return 0, err
	}
	name, err := b.prepare(ctx, sql)
	if err != nil {
		return 0, fmt.Errorf("%s: prepare: %w", what, err)
	}
	conn := b.tx.Conn().PgConn()
	var rr *pgconn.ResultReader
	if name == "" {
		rr = conn.ExecParams(ctx, sql, args, nil, nil, nil)
	} else {
		rr = conn.ExecPrepared(ctx, name, args, nil, nil)
	}
	tag, err := rr.Close()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return tag.RowsAffected(), nil
}

// sameValue reports whether two known values are equal: both NULL, or the same text.
func sameValue(a, b change.Value) bool {
	if a.Kind == change.Null || b.Kind == change.Null {
		return a.Kind == b.Kind
	}
	return a.Text == b.Text
}
