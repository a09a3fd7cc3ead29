package apply

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

// planColumn maps one source column of a relation to the target column it writes.
type planColumn struct {
	source int // position in the relation
	target targetColumn
}

// plan is how the events of one relation version are written to the target. A Relation
// message makes a new relation, so a plan never outlives a column change.
type plan struct {
	spec   *TableSpec
	target *targetTable
	rel    *change.Relation
	cols   []planColumn
	key    []int          // relation positions of the key columns
	keyCol []targetColumn // the target columns of the key, in key order
	actor  int            // relation position of the actor column, or -1
	// ignored lists source columns the target does not have; they are not written.
	ignored    []string
	ignoredPos []int // their relation positions
	// keyless is set for a REPLICA IDENTITY FULL table without any key: key then lists
	// every mapped column, and rows are found by all their values.
	keyless bool
}

// newPlan maps a relation onto its target table.
func newPlan(spec *TableSpec, target *targetTable, rel *change.Relation) (*plan, error) {
	p := &plan{spec: spec, target: target, rel: rel, actor: -1}
	for i, c := range rel.Columns {
		name := spec.targetName(c.Name)
		if c.Name == spec.ActorColumn && spec.ActorColumn != "" {
			p.actor = i
		}
		if name == "" {
			continue
		}
		tc, ok := target.column(name)
		if !ok {
			p.ignored = append(p.ignored, c.Name)
			p.ignoredPos = append(p.ignoredPos, i)
			continue
		}
		if tc.Generated {
			continue
		}
		p.cols = append(p.cols, planColumn{source: i, target: tc})
	}

	if len(rel.Columns) == 0 {
		// A relation without columns, such as one rebuilt from a recorded TRUNCATE,
		// serves only to truncate.
		return p, nil
	}
	if err := p.resolveKey(); err != nil {
		return nil, err
	}
	return p, nil
}

// resolveKey finds the key columns: the configured ones, or the relation's replica
// identity.
func (p *plan) resolveKey() error {
	if len(p.spec.Key) > 0 {
		for _, name := range p.spec.Key {
			i := p.rel.ColumnIndex(name)
			if i < 0 {
				return fmt.Errorf("table %s: key column %q is not a column of the source; "+
					"fix tables[].key", p.rel.Table, name)
			}
			p.key = append(p.key, i)
		}
	} else {
		p.key = p.rel.KeyColumns()
	}
	if len(p.key) == 0 {
		return fmt.Errorf("table %s has no primary key or replica identity index, so its rows "+
			"cannot be matched on the target: add a primary key or set tables[].key", p.rel.Table)
	}
	if p.rel.ReplicaIdentity == 'f' && len(p.spec.Key) == 0 && len(p.key) == len(p.rel.Columns) {
		// With REPLICA IDENTITY FULL every column is flagged as key, so the rows are
		// matched by the target's primary key or another unique key that the source
		// columns fill.
		p.key = p.targetUniqueKey()
		if p.key == nil {
			// Without any key, a row is matched by all its mapped columns, and a change
			// touches one of the identical rows it matches.
			p.keyless = true
			for _, c := range p.cols {
				p.key = append(p.key, c.source)
			}
		}
	}

	for _, i := range p.key {
		name := p.spec.targetName(p.rel.Columns[i].Name)
		tc, ok := p.target.column(name)
		if name == "" || !ok {
			return fmt.Errorf("table %s: key column %q has no target column in %s; "+
				"map it with tables[].columns or add it to the target", p.rel.Table,
				p.rel.Columns[i].Name, p.target.Name)
		}
		p.keyCol = append(p.keyCol, tc)
	}
	return nil
}

// keyValues returns the key values of a tuple, or an error when one is not known.
func (p *plan) keyValues(t change.Tuple) ([]change.Value, error) {
	vals := make([]change.Value, len(p.key))
	for j, i := range p.key {
		if i >= len(t) || !t[i].Known() {
			return nil, fmt.Errorf("table %s: key column %q is not in the tuple",
				p.rel.Table, p.rel.Columns[i].Name)
		}
		vals[j] = t[i]
	}
	return vals, nil
}

// whereKey returns "k1" = $n AND "k2" = $n+1 for the key columns, numbering from first.
func (p *plan) whereKey(first int) string {
	var b strings.Builder
	for j, c := range p.keyCol {
		if j > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, "%s = $%d", pgx.Identifier{c.Name}.Sanitize(), first+j)
	}
	return b.String()
}

// targetUniqueKey returns the relation positions of the columns that fill the target's
// primary key, or else its first unique key whose columns all come from the source, or
// nil.
func (p *plan) targetUniqueKey() []int {
	for _, key := range p.target.uniqueKeys {
		var positions []int
		for _, col := range key {
			for _, c := range p.cols {
				if c.target.Name == col {
					positions = append(positions, c.source)
					break
				}
			}
		}
		if len(positions) == len(key) {
			return positions
		}
	}
	return nil
}

// missingColumnValue returns the first source column without a target column that ev
// carries a non-NULL value of, or "". A NULL loses nothing when it is not written.
func (p *plan) missingColumnValue(ev *change.Event) string {
	for j, i := range p.ignoredPos {
		if i < len(ev.New) && ev.New[i].Kind == change.Text {
			return p.ignored[j]
		}
	}
	return ""
}
