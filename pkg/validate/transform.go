package validate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// TransformError is an invalid column transform: its expression does not parse or
// type-check, or its result type has no PostgreSQL text form. Field is the configuration
// path, such as tables[0].transform.zip. Line and Column are 1-based positions in the
// expression, and 0 when the problem is not at one position.
type TransformError struct {
	Field   string
	Line    int
	Column  int
	Message string
}

func (e *TransformError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d, column %d: %s", e.Field, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// TableTransforms are the compiled column transforms of one table. They see the variables
// of a rule (old, new, changed, op, table and actor) and compute the value written to the
// target column of their source column. TableTransforms is safe for concurrent use.
type TableTransforms struct {
	actorColumn string
	columns     []string // sorted source column names
	programs    map[string]cel.Program
	expressions map[string]string      // the configured expression of each column
	refs        map[string][]columnRef // the columns each column's expression reads
	costLimit   uint64                 // rule_cost_limit, named in errors

	mu    sync.Mutex // guards types, whose decoding caches are not safe for concurrent use
	types *pgtype.Map
}

// writableKinds are the result kinds that have a PostgreSQL text form. Dyn and any are
// checked at run time.
var writableKinds = []types.Kind{
	types.BoolKind, types.BytesKind, types.DoubleKind, types.DurationKind, types.IntKind,
	types.NullTypeKind, types.StringKind, types.TimestampKind, types.UintKind,
	types.DynKind, types.AnyKind,
}

// NewTransforms compiles and type-checks the transforms of every configured table and
// returns them by source table. Tables without transforms are left out. The returned
// error joins one *TransformError per invalid expression. costLimit caps the CEL runtime
// cost of one evaluation, as rule_cost_limit does for rules, and must be more than 0.
func NewTransforms(tables []config.Table, costLimit uint64) (map[change.TableName]*TableTransforms, error) {
	if costLimit == 0 {
		return nil, errors.New("rule cost limit is 0: set rule_cost_limit to a positive number")
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}

	var errs []error
	out := map[change.TableName]*TableTransforms{}
	for i, t := range tables {
		if len(t.Transform) == 0 {
			continue
		}
		tt := &TableTransforms{
			actorColumn: t.ActorColumn, programs: map[string]cel.Program{}, types: pgtype.NewMap(),
			expressions: map[string]string{}, refs: map[string][]columnRef{}, costLimit: costLimit,
		}
		for _, col := range sortedColumns(t.Transform) {
			field := fmt.Sprintf("tables[%d].transform.%s", i, col)
			prg, refs, err := compileTransform(env, field, t.Transform[col], costLimit)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			tt.columns = append(tt.columns, col)
			tt.programs[col] = prg
			tt.expressions[col] = t.Transform[col]
			tt.refs[col] = refs
		}
		out[t.Source] = tt
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func sortedColumns(m map[string]string) []string {
	cols := make([]string, 0, len(m))
	for col := range m {
		cols = append(cols, col)
	}
	slices.Sort(cols)
	return cols
}

// compileTransform compiles one expression and returns its program and the columns it reads.
func compileTransform(env *cel.Env, field, expr string, costLimit uint64) (cel.Program, []columnRef, error) {
	ast, issues := env.Compile(expr)
	if issues != nil && issues.Err() != nil {
		var errs []error
		for _, e := range issues.Errors() {
			errs = append(errs, &TransformError{
				Field: field, Message: e.Message,
				Line: e.Location.Line(), Column: e.Location.Column() + 1, // CEL counts columns from 0
			})
		}
		return nil, nil, errors.Join(errs...)
	}
	if out := ast.OutputType(); !slices.Contains(writableKinds, out.Kind()) {
		return nil, nil, &TransformError{Field: field, Message: fmt.Sprintf("the expression is of type "+
			"%s, which has no PostgreSQL text form: return a string, number, bool, bytes, "+
			"timestamp, duration or null, such as with string(…)", out)}
	}

	prg, err := env.Program(ast,
		cel.CostLimit(costLimit),
		cel.InterruptCheckFrequency(interruptEvery),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, nil, &TransformError{Field: field, Message: err.Error()}
	}
	return prg, columnRefs(ast), nil
}

// Columns returns the transformed source columns, sorted.
func (t *TableTransforms) Columns() []string { return t.columns }

// Transform evaluates the transform of each transformed column whose new value ev
// carries, and returns the results in PostgreSQL text form, keyed by source column. A
// column that is an unchanged TOAST value or not in the new tuple gets no result, so it
// is not written. actor is the user attached to the source transaction; when it is "",
// the variable actor is the table's actor column, as for rules. The error names the
// column whose expression failed.
func (t *TableTransforms) Transform(ctx context.Context, ev *change.Event, actor string,
) (map[string]change.Value, error) {
	if ev.Relation == nil || (ev.Op != change.OpInsert && ev.Op != change.OpUpdate) {
		return nil, nil
	}
	var vars map[string]any
	out := make(map[string]change.Value, len(t.columns))
	for _, col := range t.columns {
		i := ev.Relation.ColumnIndex(col)
		if i < 0 || i >= len(ev.New) || !ev.New[i].Known() {
			continue
		}
		if vars == nil {
			vars = t.vars(ev, actor)
		}
		v, err := t.eval(ctx, col, vars)
		if err != nil {
			return nil, fmt.Errorf("transform of column %q failed: %w", col, err)
		}
		out[col] = v
	}
	return out, nil
}

func (t *TableTransforms) vars(ev *change.Event, actor string) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return eventVars(t.types, &change.Tx{Actor: actor}, ev, t.actorColumn)
}

func (t *TableTransforms) eval(ctx context.Context, col string, vars map[string]any) (change.Value, error) {
	out, _, err := t.programs[col].ContextEval(ctx, vars)
	if err != nil {
		return change.Value{}, t.explainError(ctx, col, vars, err)
	}
	return textForm(out)
}

// textForm returns a CEL result in the PostgreSQL text form that the target casts to the
// column's type. Strings are written as they are, bytes as bytea hex (\x…), timestamps in
// RFC 3339 with up to nine fractional digits and durations as ISO 8601 seconds (PT1.5S).
// A double is the shortest decimal without an exponent that reads back the same, so an
// integral double also casts to an integer column. NaN and the infinities are spelled as
// PostgreSQL spells them.
func textForm(v ref.Val) (change.Value, error) {
	switch x := v.(type) {
	case types.Null:
		return change.NullValue(), nil
	case types.String:
		return change.TextValue(string(x)), nil
	case types.Bool:
		return change.TextValue(strconv.FormatBool(bool(x))), nil
	case types.Int:
		return change.TextValue(strconv.FormatInt(int64(x), 10)), nil
	case types.Uint:
		return change.TextValue(strconv.FormatUint(uint64(x), 10)), nil
	case types.Double:
		return change.TextValue(formatDouble(float64(x))), nil
	case types.Bytes:
		return change.TextValue(`\x` + hex.EncodeToString(x)), nil
	case types.Timestamp:
		return change.TextValue(x.Format(time.RFC3339Nano)), nil
	case types.Duration:
		return change.TextValue("PT" + strconv.FormatFloat(x.Seconds(), 'f', -1, 64) + "S"), nil
	}
	return change.Value{}, fmt.Errorf("the result is of type %s, which has no PostgreSQL text form: "+
		"return a string, number, bool, bytes, timestamp, duration or null", v.Type())
}

func formatDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
