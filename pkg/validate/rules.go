package validate

import (
	"context"
	"errors"
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// RuleDecider is the DecidedBy prefix of a rule's decision, followed by the rule name.
const RuleDecider = "rule:"

// interruptEvery is how many comprehension iterations run between two checks of the
// context, so that a canceled context stops a long rule.
const interruptEvery = 100

// RuleError is a rule that is invalid: its condition does not parse or type-check, or
// its action or table is not valid. Line and Column are 1-based positions in the
// condition, and 0 when the problem is not in the condition.
type RuleError struct {
	Rule    string
	Index   int // position in the rules list
	Line    int
	Column  int
	Message string
}

func (e *RuleError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("rules[%d] %q: when: line %d, column %d: %s", e.Index, e.Rule,
			e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("rules[%d] %q: %s", e.Index, e.Rule, e.Message)
}

// Rules is an ordered list of compiled rules. The first rule whose table fits and whose
// condition is true decides an event.
type Rules struct {
	rules []compiledRule
}

type compiledRule struct {
	name    string
	table   change.TableName // zero for every table
	action  change.Verdict
	reason  string
	program cel.Program
}

// NewRules compiles and type-checks the rules. A condition must be a bool (or dyn)
// expression over old, new, changed, op, table and actor. The returned error joins one
// *RuleError per problem. costLimit caps the CEL runtime cost of one evaluation and must
// be more than 0.
func NewRules(rules []config.Rule, costLimit uint64) (*Rules, error) {
	if costLimit == 0 {
		return nil, errors.New("rule cost limit is 0: set rule_cost_limit to a positive number")
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}

	var errs []error
	compiled := make([]compiledRule, 0, len(rules))
	for i, r := range rules {
		c, err := compileRule(env, i, r, costLimit)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		compiled = append(compiled, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Rules{rules: compiled}, nil
}

// newEnv declares the variables of a rule. Cross-type numeric comparisons let a rule
// compare a numeric column, which is a double, with an integer literal.
func newEnv() (*cel.Env, error) {
	row := cel.MapType(cel.StringType, cel.DynType)
	env, err := cel.NewEnv(
		cel.Variable(varOld, row),
		cel.Variable(varNew, row),
		cel.Variable(varChanged, cel.ListType(cel.StringType)),
		cel.Variable(varOp, cel.StringType),
		cel.Variable(varTable, cel.StringType),
		cel.Variable(varActor, cel.StringType),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
	)
	if err != nil {
		return nil, fmt.Errorf("build the CEL environment: %w", err)
	}
	return env, nil
}

func compileRule(env *cel.Env, i int, r config.Rule, costLimit uint64) (compiledRule, error) {
	c := compiledRule{name: r.Name, action: change.Verdict(r.Action), reason: r.Reason}
	invalid := func(format string, args ...any) error {
		return &RuleError{Rule: r.Name, Index: i, Message: fmt.Sprintf(format, args...)}
	}

	switch c.action {
	case change.Approve, change.Skip, change.Reject, change.Hold:
	default:
		return c, invalid("invalid action %q: use approve, skip, reject or hold", r.Action)
	}
	if r.Table != "" {
		table, err := config.ParseTableName(r.Table)
		if err != nil {
			return c, invalid("table: %v", err)
		}
		c.table = table
	}
	if c.reason == "" {
		c.reason = r.When
	}

	ast, issues := env.Compile(r.When)
	if issues != nil && issues.Err() != nil {
		return c, conditionErrors(i, r.Name, issues)
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return c, invalid("when: the condition is of type %s: write a bool expression, such as "+
			"\"op == 'delete'\"", out)
	}

	prg, err := env.Program(ast,
		cel.CostLimit(costLimit),
		cel.InterruptCheckFrequency(interruptEvery),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return c, invalid("when: %v", err)
	}
	c.program = prg
	return c, nil
}

// conditionErrors turns CEL's issues into one *RuleError per issue, with its position.
func conditionErrors(i int, name string, issues *cel.Issues) error {
	var errs []error
	for _, e := range issues.Errors() {
		errs = append(errs, &RuleError{
			Rule: name, Index: i, Message: e.Message,
			Line: e.Location.Line(), Column: e.Location.Column() + 1, // CEL counts columns from 0
		})
	}
	return errors.Join(errs...)
}

// Len returns the number of rules.
func (r *Rules) Len() int { return len(r.rules) }

// Decide evaluates the rules in order on the variables of one event of table and returns
// the decision of the first rule that matches, with matched true. A rule that cannot be
// evaluated (a missing column, a NULL where a string is expected, or the cost limit)
// decides too: it holds the event, and err contains the cause.
func (r *Rules) Decide(ctx context.Context, table change.TableName, vars map[string]any,
) (dec change.Decision, matched bool, err error) {
	for i := range r.rules {
		rule := &r.rules[i]
		if rule.table != (change.TableName{}) && rule.table != table {
			continue
		}

		ok, err := rule.eval(ctx, vars)
		if err != nil {
			return change.Decision{
				Verdict:   change.Hold,
				Reason:    fmt.Sprintf("rule %s could not be evaluated, so the change is held: %v", rule.name, err),
				DecidedBy: RuleDecider + rule.name,
			}, true, fmt.Errorf("evaluate rule %s: %w", rule.name, err)
		}
		if ok {
			return change.Decision{
				Verdict:   rule.action,
				Reason:    fmt.Sprintf("rule %s matched: %s", rule.name, rule.reason),
				DecidedBy: RuleDecider + rule.name,
			}, true, nil
		}
	}
	return change.Decision{}, false, nil
}

func (r *compiledRule) eval(ctx context.Context, vars map[string]any) (bool, error) {
	out, _, err := r.program.ContextEval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the condition returned %s %v, not a bool", out.Type(), out)
	}
	return bool(b), nil
}
