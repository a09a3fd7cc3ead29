package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// longValueBytes is the length above which a value may make a transform exceed
// rule_cost_limit, because CEL charges string and bytes functions by length. A failed
// evaluation is retried with longer values cut to this length to find out.
const longValueBytes = 1024

// columnRef is a column that an expression reads, such as new.zip or old["zip"].
type columnRef struct {
	tuple  string // varNew or varOld
	column string
}

func (r columnRef) String() string { return r.tuple + "." + r.column }

// columnRefs returns the columns of old and new that a checked expression reads by
// name, in the order they first appear. A column named by a computed key is not found.
func columnRefs(ast *cel.Ast) []columnRef {
	var refs []columnRef
	add := func(tuple celast.Expr, column string) {
		if tuple.Kind() != celast.IdentKind {
			return
		}
		name := tuple.AsIdent()
		ref := columnRef{tuple: name, column: column}
		if (name == varNew || name == varOld) && !containsRef(refs, ref) {
			refs = append(refs, ref)
		}
	}

	// MatchDescendants lists children before their parents, so new.a + new.b lists new.a
	// first.
	all := celast.MatchDescendants(celast.NavigateAST(ast.NativeRep()), func(celast.NavigableExpr) bool { return true })
	for _, e := range all {
		switch e.Kind() {
		case celast.SelectKind:
			if sel := e.AsSelect(); !sel.IsTestOnly() {
				add(sel.Operand(), sel.FieldName())
			}
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() != operators.Index || len(call.Args()) != 2 {
				continue
			}
			key := call.Args()[1]
			if key.Kind() != celast.LiteralKind {
				continue
			}
			if s, ok := key.AsLiteral().(types.String); ok {
				add(call.Args()[0], string(s))
			}
		}
	}
	return refs
}

func containsRef(refs []columnRef, ref columnRef) bool {
	for _, r := range refs {
		if r == ref {
			return true
		}
	}
	return false
}

// explainError adds the likely cause and the fix to an evaluation error of the transform
// of col: a NULL value that the expression reads, or a cost above rule_cost_limit, with
// the value whose length caused it. Other errors are returned as they are.
func (t *TableTransforms) explainError(ctx context.Context, col string, vars map[string]any, err error) error {
	var cancelled interpreter.EvalCancelledError
	if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
		return t.explainCost(ctx, col, vars, err)
	}
	if strings.Contains(err.Error(), "no such overload") {
		if nulls := t.nullRefs(col, vars); len(nulls) > 0 {
			return t.explainNull(col, nulls, err)
		}
	}
	return err
}

// nullRefs returns the columns that the transform of col reads and that are NULL.
func (t *TableTransforms) nullRefs(col string, vars map[string]any) []columnRef {
	var nulls []columnRef
	for _, ref := range t.refs[col] {
		row, _ := vars[ref.tuple].(map[string]any)
		if v, ok := row[ref.column]; ok && v == nil {
			nulls = append(nulls, ref)
		}
	}
	return nulls
}

// explainNull names the NULL values and suggests the guarded expression. The
// expression's result needs dyn() there, because CEL's type checker rejects a
// conditional whose branches are null and a string.
func (t *TableTransforms) explainNull(col string, nulls []columnRef, err error) error {
	var names, tests []string
	for _, ref := range nulls {
		names = append(names, ref.String())
		tests = append(tests, ref.String()+" == null")
	}
	subject := "the value of " + names[0] + " is"
	if len(nulls) > 1 {
		subject = "the values of " + strings.Join(names, " and ") + " are"
	}
	return fmt.Errorf("%w: %s NULL: guard the expression, such as with "+
		"\"%s ? null : dyn(%s)\"", err, subject,
		strings.Join(tests, " || "), t.expressions[col])
}

// explainCost retries the evaluation with every value longer than longValueBytes cut to
// that length. When the retry stays within the cost limit, the length of a value caused
// the failure, and the error names the longest value the expression reads.
func (t *TableTransforms) explainCost(ctx context.Context, col string, vars map[string]any, err error) error {
	longest, length := t.longestRef(col, vars)
	if length > longValueBytes {
		_, _, retryErr := t.programs[col].ContextEval(ctx, shortenedVars(vars))
		var cancelled interpreter.EvalCancelledError
		if !errors.As(retryErr, &cancelled) {
			return fmt.Errorf("%w: the value of %s is %d bytes long, and CEL charges string and bytes "+
				"functions by length, so the evaluation cost more than rule_cost_limit (%d): raise "+
				"rule_cost_limit, or skip long values with a condition on size(%s)",
				err, longest, length, t.costLimit, longest)
		}
	}
	return fmt.Errorf("%w: the evaluation cost more than rule_cost_limit (%d): simplify the "+
		"expression, or raise rule_cost_limit", err, t.costLimit)
}

// longestRef returns the longest string or bytes value that the transform of col reads,
// and its length in bytes.
func (t *TableTransforms) longestRef(col string, vars map[string]any) (columnRef, int) {
	var longest columnRef
	length := 0
	for _, ref := range t.refs[col] {
		row, _ := vars[ref.tuple].(map[string]any)
		n := 0
		switch v := row[ref.column].(type) {
		case string:
			n = len(v)
		case []byte:
			n = len(v)
		}
		if n > length {
			longest, length = ref, n
		}
	}
	return longest, length
}

// shortenedVars returns a copy of vars whose old and new values longer than
// longValueBytes are cut to that length, at a UTF-8 character boundary.
func shortenedVars(vars map[string]any) map[string]any {
	out := make(map[string]any, len(vars))
	for name, v := range vars {
		out[name] = v
	}
	for _, tuple := range []string{varOld, varNew} {
		row, _ := vars[tuple].(map[string]any)
		short := make(map[string]any, len(row))
		for col, v := range row {
			switch x := v.(type) {
			case string:
				if len(x) > longValueBytes {
					cut := longValueBytes
					for cut > 0 && !utf8.RuneStart(x[cut]) {
						cut--
					}
					v = x[:cut]
				}
			case []byte:
				if len(x) > longValueBytes {
					v = x[:longValueBytes]
				}
			}
			short[col] = v
		}
		out[tuple] = short
	}
	return out
}
