package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// Row policies of an INSERT that finds its key on the target and of an UPDATE or DELETE
// that finds no target row.
const (
	ExistingRowUpdate = "update" // apply the INSERT as a delta to the existing row
	ExistingRowFail   = "fail"   // record the change as failed and write nothing
	MissingRowInsert  = "insert" // insert the row when the new tuple is complete and the table has a key
	MissingRowSkip    = "skip"   // record the change as skipped and write nothing
	MissingRowFail    = "fail"   // record the change as failed and write nothing

	MissingColumnHold   = "hold"   // hold a change with a value for a column the target lacks
	MissingColumnIgnore = "ignore" // write the other columns of such a change
)

// Policy decides what happens when the target row does not look as the change expects.
type Policy struct {
	OnExistingRow string // ExistingRowUpdate (default) or ExistingRowFail
	OnMissingRow  string // MissingRowInsert (default), MissingRowSkip or MissingRowFail
	// OnMissingColumn is MissingColumnIgnore (the default of the zero Policy) or
	// MissingColumnHold.
	OnMissingColumn string
}

// Applier maps change events to their target tables and writes them in batches. It is
// safe for use by one batch at a time.
type Applier struct {
	specs   map[change.TableName]*TableSpec
	targets map[change.TableName]*targetTable // by source table
	policy  Policy
	log     *slog.Logger

	mu           sync.Mutex
	plans        map[*change.Relation]*plan
	copyProgress CopyProgress // nil reports copy progress in the log only
	// statements maps the text of each prepared write statement to its name.
	statements map[string]string
}

// maxPrepared bounds the distinct write statements the applier prepares. An UPDATE
// statement names the changed columns, so a wide table can produce many shapes.
const maxPrepared = 512

// statementName returns the prepared-statement name for sql, or false when the
// applier already prepares maxPrepared other statements.
func (a *Applier) statementName(sql string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if name, ok := a.statements[sql]; ok {
		return name, true
	}
	if len(a.statements) >= maxPrepared {
		return "", false
	}
	sum := sha256.Sum256([]byte(sql))
	// 32 hex digits fit the server's 63-byte identifier limit with the prefix.
	name := "changesync_" + hex.EncodeToString(sum[:16])
	a.statements[sql] = name
	return name, true
}

// New reads the target tables of specs from the target catalog and returns an applier
// for them. A missing target table is an error that wraps ErrTargetMissing.
func New(ctx context.Context, q Querier, specs []TableSpec, policy Policy, log *slog.Logger) (*Applier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if policy.OnExistingRow == "" {
		policy.OnExistingRow = ExistingRowUpdate
	}
	if policy.OnMissingRow == "" {
		policy.OnMissingRow = MissingRowInsert
	}
	a := &Applier{
		specs:      map[change.TableName]*TableSpec{},
		targets:    map[change.TableName]*targetTable{},
		policy:     policy,
		log:        log,
		plans:      map[*change.Relation]*plan{},
		statements: map[string]string{},
	}
	for i := range specs {
		spec := &specs[i]
		target, err := loadTarget(ctx, q, spec.Target)
		if err != nil {
			return nil, err
		}
		a.specs[spec.Source] = spec
		a.targets[spec.Source] = target
	}
	return a, nil
}

// Spec returns the mapping of a source table, or nil when the table is not configured.
func (a *Applier) Spec(source change.TableName) *TableSpec { return a.specs[source] }

// SourceTable returns the configured source table whose schema.table form is name, as
// change_events.table_name stores it.
func (a *Applier) SourceTable(name string) (change.TableName, bool) {
	for t := range a.specs {
		if t.String() == name {
			return t, true
		}
	}
	return change.TableName{}, false
}

// plan returns the plan of a relation, building it on first use.
func (a *Applier) plan(rel *change.Relation) (*plan, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.plans[rel]; ok {
		return p, nil
	}
	spec, ok := a.specs[rel.Table]
	if !ok {
		return nil, fmt.Errorf("table %s is published but not configured", rel.Table)
	}
	p, err := newPlan(spec, a.targets[rel.Table], rel)
	if err != nil {
		return nil, err
	}
	if len(p.ignored) > 0 {
		a.log.Warn("source columns missing on the target are not written",
			"table", rel.Table.String(), "target_table", p.target.Name.String(), "columns", p.ignored)
	}
	a.plans[rel] = p
	return p, nil
}

// Begin starts a batch of writes inside the target transaction tx.
func (a *Applier) Begin(tx pgx.Tx) *Batch {
	return &Batch{a: a, tx: tx, rows: map[string]*rowState{}, truncated: map[*(*change.Relation)]bool{}}
}

// Actor returns the new value of the table's actor column in ev, or "" when the table
// has none or the change does not carry it.
func (a *Applier) Actor(ev *change.Event) string {
	p, err := a.plan(ev.Relation)
	if err != nil || p.actor < 0 || ev.New == nil || p.actor >= len(ev.New) || ev.New[p.actor].Kind != change.Text {
		return ""
	}
	return ev.New[p.actor].Text
}

// RowKeys returns the source rows an event touches, in change_events.row_key form: the
// row key of RowKey and, for an UPDATE that moves the row, its old key too. A TRUNCATE
// touches every row, which "*" stands for.
func (a *Applier) RowKeys(ev *change.Event) []string {
	if ev.Op == change.OpTruncate {
		return []string{"*"}
	}
	key, err := a.RowKey(ev)
	if err != nil {
		return nil
	}
	keys := []string{key}
	if ev.Op == change.OpUpdate && ev.Old != nil {
		if p, err := a.plan(ev.Relation); err == nil {
			if old, err := p.keyValues(ev.Old); err == nil && change.RowKey(old) != key {
				keys = append(keys, change.RowKey(old))
			}
		}
	}
	return keys
}

// RowKey returns the row key of an event's source row in change_events.row_key form:
// the new key of an INSERT or UPDATE and the old key of a DELETE. A TRUNCATE has none.
func (a *Applier) RowKey(ev *change.Event) (string, error) {
	if ev.Op == change.OpTruncate {
		return "", nil
	}
	p, err := a.plan(ev.Relation)
	if err != nil {
		return "", err
	}
	t := ev.Old
	if ev.Op != change.OpDelete {
		t = fillUnchanged(ev.New, ev.Old)
	}
	key, err := p.keyValues(t)
	if err != nil {
		return "", err
	}
	return change.RowKey(key), nil
}
