package apply

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

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
	spec     *TableSpec
	target   *targetTable
	rel      *change.Relation
	cols     []planColumn
	key      []int          // relation positions of the key columns
	keyCol   []targetColumn // the target columns of the key, in key order
	keyNames []string       // the names of keyCol

	actor int // relation position of the actor column, or -1
	// ignored lists source columns the target does not have; they are not written.
	ignored    []string
	ignoredPos []int // their relation positions
	// keyless is set for a REPLICA IDENTITY FULL table without any key: key then lists
	// every mapped column, and rows are found by all their values.
	keyless bool

	// insertWhat, updateWhat and deleteWhat name the writes in error messages.
	insertWhat, updateWhat, deleteWhat string
	texts                              statementTexts
}

// statementTexts caches the text of a plan's write statements by statement kind and
// column set, so that changes of the same shape share one text instead of each building
// it. It keeps at most maxPrepared texts, because a wide table has many column subsets.
type statementTexts struct {
	mu    sync.Mutex
	byKey map[string]string
}

// keyColumnNames returns the names of the target key columns, in key order. Every
// Result shares the slice, so it must not be changed.
func (p *plan) keyColumnNames() []string { return p.keyNames }

// textKey returns the cache key of a statement of the given kind over the plan columns
// cols (indexes into plan.cols), appended to buf.
func textKey(buf []byte, kind byte, cols []int) []byte {
	buf = append(buf, kind)
	for _, j := range cols {
		buf = binary.AppendUvarint(buf, uint64(j))
	}
	return buf
}

// cachedText returns the statement text cached under key.
func (p *plan) cachedText(key []byte) (string, bool) {
	p.texts.mu.Lock()
	defer p.texts.mu.Unlock()
	sql, ok := p.texts.byKey[string(key)]
	return sql, ok
}

// cacheText caches sql under key unless the cache is full.
func (p *plan) cacheText(key []byte, sql string) {
	p.texts.mu.Lock()
	defer p.texts.mu.Unlock()
	if p.texts.byKey == nil {
		p.texts.byKey = map[string]string{}
	}
	if len(p.texts.byKey) < maxPrepared {
		p.texts.byKey[string(key)] = sql
	}
}

// updateSQL returns the UPDATE of the plan columns cols, in that order, as $1…, of the
// row whose key follows them as parameters.
func (p *plan) updateSQL(cols []int) string {
	var keyBuf [64]byte
	key := textKey(keyBuf[:0], 'u', cols)
	if sql, ok := p.cachedText(key); ok {
		return sql
	}
	sets := make([]string, len(cols))
	for i, j := range cols {
		sets[i] = fmt.Sprintf("%s = $%d", pgx.Identifier{p.cols[j].target.Name}.Sanitize(), i+1)
	}
	sql := "UPDATE " + p.target.Name.Sanitize() + " SET " + strings.Join(sets, ", ") +
		" WHERE " + p.whereKey(len(cols)+1)
	p.cacheText(key, sql)
	return sql
}

// insertSQL returns the INSERT of the plan columns cols, in that order, as $1….
func (p *plan) insertSQL(cols []int) string {
	var keyBuf [64]byte
	key := textKey(keyBuf[:0], 'i', cols)
	if sql, ok := p.cachedText(key); ok {
		return sql
	}
	names := make([]string, len(cols))
	overriding := false
	for i, j := range cols {
		names[i] = pgx.Identifier{p.cols[j].target.Name}.Sanitize()
		overriding = overriding || p.cols[j].target.IdentityAlways
	}
	var sql strings.Builder
	sql.WriteString("INSERT INTO " + p.target.Name.Sanitize() + " (" + strings.Join(names, ", ") + ")")
	if overriding {
		sql.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	sql.WriteString(" VALUES (" + placeholders(1, len(cols)) + ")")
	p.cacheText(key, sql.String())
	return sql.String()
}

// deleteSQL returns the DELETE of the row whose key is $1….
func (p *plan) deleteSQL() string {
	key := []byte{'d'}
	if sql, ok := p.cachedText(key); ok {
		return sql
	}
	sql := "DELETE FROM " + p.target.Name.Sanitize() + " WHERE " + p.whereKey(1)
	p.cacheText(key, sql)
	return sql
}

// newPlan maps a relation onto its target table.
func newPlan(spec *TableSpec, target *targetTable, rel *change.Relation) (*plan, error) {
	p := &plan{
		spec: spec, target: target, rel: rel, actor: -1,
		insertWhat: "insert into " + target.Name.String(),
		updateWhat: "update " + target.Name.String(),
		deleteWhat: "delete from " + target.Name.String(),
	}
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
	if err := p.checkTransforms(); err != nil {
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
		p.keyNames = append(p.keyNames, tc.Name)
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
