package validate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// typicalRules are the rules of the documentation, in order.
func typicalRules() []config.Rule {
	return []config.Rule{
		{Name: "skip-bot", When: "actor == 'etl-bot'", Action: "skip"},
		{
			Name: "address-not-empty", Table: "crm.customers", Action: "reject",
			When: "op != 'delete' && 'address' in changed && (new.address == null || new.address.trim() == '')",
		},
		{
			Name: "zip-is-valid", Table: "crm.customers", Action: "reject", Reason: "zip code must have five digits",
			When: "op != 'delete' && 'zip' in changed && (new.zip == null || !new.zip.matches('^[0-9]{5}$'))",
		},
		{Name: "hold-price", Table: "crm.customers", When: "'price' in changed", Action: "hold"},
	}
}

func TestRulesDecide(t *testing.T) {
	tests := []struct {
		name          string
		ev            change.Event
		actor         string
		wantVerdict   change.Verdict
		wantDecidedBy string
		wantReason    string
	}{
		{
			name:        "address change approved",
			ev:          update(alice(), row("2", "Alice", "9 New Street", "54321", "10.50", "likes email", "crm-app", "t")),
			wantVerdict: change.Approve, wantDecidedBy: DefaultDecider, wantReason: "no rule matched",
		},
		{
			name:        "bot skipped by actor column",
			ev:          update(alice(), row("2", "Alice", "9 New Street", "54321", "10.50", "likes email", "etl-bot", "t")),
			wantVerdict: change.Skip, wantDecidedBy: "rule:skip-bot", wantReason: "rule skip-bot matched: actor == 'etl-bot'",
		},
		{
			name:        "bot skipped by transaction actor",
			ev:          update(alice(), row("2", "Alice", "", "54321", "10.50", "likes email", "crm-app", "t")),
			actor:       "etl-bot",
			wantVerdict: change.Skip, wantDecidedBy: "rule:skip-bot",
		},
		{
			name:        "empty address rejected",
			ev:          update(alice(), row("2", "Alice", "  ", "12345", "10.50", "likes email", "crm-app", "t")),
			wantVerdict: change.Reject, wantDecidedBy: "rule:address-not-empty",
		},
		{
			name:        "null address rejected",
			ev:          update(alice(), row("2", "Alice", "<null>", "12345", "10.50", "likes email", "crm-app", "t")),
			wantVerdict: change.Reject, wantDecidedBy: "rule:address-not-empty",
		},
		{
			name:        "malformed zip rejected",
			ev:          update(alice(), row("2", "Alice", "1 Old Road", "1234X", "10.50", "likes email", "crm-app", "t")),
			wantVerdict: change.Reject, wantDecidedBy: "rule:zip-is-valid",
			wantReason: "rule zip-is-valid matched: zip code must have five digits",
		},
		{
			name:        "price change held",
			ev:          update(alice(), row("2", "Alice", "1 Old Road", "12345", "12.00", "likes email", "crm-app", "t")),
			wantVerdict: change.Hold, wantDecidedBy: "rule:hold-price",
		},
		{
			name:        "first match decides",
			ev:          update(alice(), row("2", "Alice", "", "1234X", "99", "likes email", "crm-app", "t")),
			wantVerdict: change.Reject, wantDecidedBy: "rule:address-not-empty",
		},
		{
			name:        "delete of a priced row held",
			ev:          change.Event{Op: change.OpDelete, Relation: customers, Old: row("2", "<absent>", "<absent>", "<absent>", "<absent>", "<absent>", "<absent>", "<absent>")},
			wantVerdict: change.Hold, wantDecidedBy: "rule:hold-price",
		},
		{
			name:        "rule of another table ignored",
			ev:          change.Event{Op: change.OpInsert, Relation: orders, New: row("7", "2")},
			wantVerdict: change.Approve, wantDecidedBy: DefaultDecider,
		},
	}
	a := newAgent(t, baseConfig(typicalRules()...))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := newTx(100, tt.ev)
			tx.Actor = tt.actor
			got := a.Validate(context.Background(), tx, &tx.Events[0])
			if got.Verdict != tt.wantVerdict {
				t.Errorf("verdict = %s, want %s (reason %q)", got.Verdict, tt.wantVerdict, got.Reason)
			}
			if got.DecidedBy != tt.wantDecidedBy {
				t.Errorf("decided by = %q, want %q", got.DecidedBy, tt.wantDecidedBy)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.wantReason)
			}
		})
	}
}

func TestRulesEveryAction(t *testing.T) {
	for _, action := range []change.Verdict{change.Approve, change.Skip, change.Reject, change.Hold} {
		t.Run(string(action), func(t *testing.T) {
			a := newAgent(t, baseConfig(config.Rule{Name: "any-" + string(action), When: "true", Action: string(action)}))
			got := validateOne(t, a, update(alice(), alice()))
			if got.Verdict != action {
				t.Errorf("verdict = %s, want %s", got.Verdict, action)
			}
			if want := "rule:any-" + string(action); got.DecidedBy != want {
				t.Errorf("decided by = %q, want %q", got.DecidedBy, want)
			}
		})
	}
}

func TestRulesCompileErrors(t *testing.T) {
	tests := []struct {
		name       string
		when       string
		action     string
		wantLine   int
		wantColumn int
		wantMsg    string
	}{
		{"undeclared variable", "op == 'update' && nwe.zip == ''", "hold", 1, 19, "undeclared reference to 'nwe'"},
		{"syntax error on line two", "op == 'update' &&\n  new.zip ==", "hold", 2, 13, "Syntax error"},
		{"not a bool", "new.zip + 'x'", "hold", 0, 0, "the condition is of type"},
		{"integer condition", "size(changed)", "hold", 0, 0, "the condition is of type int"},
		{"invalid action", "true", "drop", 0, 0, `invalid action "drop"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := []config.Rule{
				{Name: "fine", When: "true", Action: "approve"},
				{Name: "broken", When: tt.when, Action: tt.action},
			}
			_, err := New(baseConfig(rules...))
			if err == nil {
				t.Fatal("New accepted the rule")
			}

			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v holds no *RuleError", err)
			}
			if re.Rule != "broken" || re.Index != 1 {
				t.Errorf("rule = %q at %d, want broken at 1", re.Rule, re.Index)
			}
			if re.Line != tt.wantLine || re.Column != tt.wantColumn {
				t.Errorf("position = line %d, column %d, want line %d, column %d", re.Line, re.Column,
					tt.wantLine, tt.wantColumn)
			}
			if !strings.Contains(re.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", re.Message, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), `rules[1] "broken"`) {
				t.Errorf("error %q does not name the rule", err)
			}
		})
	}
}

func TestRulesCompileErrorText(t *testing.T) {
	_, err := NewRules([]config.Rule{{Name: "zip", When: "new.zip.matches('[0-9]+') && nwe", Action: "reject"}}, 100)
	want := `rules[0] "zip": when: line 1, column 30: undeclared reference to 'nwe' (did you mean 'new'?)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestRulesCostLimit(t *testing.T) {
	// The comprehension visits every changed column, so its cost grows with the row.
	rule := config.Rule{Name: "expensive", When: "changed.exists(c, c.startsWith('zzz'))", Action: "reject"}
	rel := &change.Relation{Table: customersTable}
	ev := change.Event{Op: change.OpInsert, Relation: rel}
	for i := range 500 {
		rel.Columns = append(rel.Columns, change.Column{Name: "c" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
		ev.New = append(ev.New, change.TextValue("x"))
	}

	cfg := baseConfig(rule)
	cfg.RuleCostLimit = 100
	got := validateOne(t, newAgent(t, cfg), ev)
	if got.Verdict != change.Hold {
		t.Errorf("verdict under a limit of 100 = %s, want hold", got.Verdict)
	}
	if got.DecidedBy != "rule:expensive" {
		t.Errorf("decided by = %q, want rule:expensive", got.DecidedBy)
	}
	if !strings.Contains(got.Reason, "cost limit exceeded") {
		t.Errorf("reason = %q, want the cost limit named", got.Reason)
	}

	cfg.RuleCostLimit = 1_000_000
	got = validateOne(t, newAgent(t, cfg), ev)
	if got.Verdict != change.Approve {
		t.Errorf("verdict under a limit of 1000000 = %s (%s), want approve", got.Verdict, got.Reason)
	}
}

func TestRulesNulls(t *testing.T) {
	withNullZip := row("2", "Alice", "1 Old Road", "<null>", "10.50", "<toast>", "crm-app", "t")
	tests := []struct {
		name  string
		when  string
		ev    change.Event
		match bool
	}{
		{"null equals null", "new.zip == null", update(alice(), withNullZip), true},
		{"null is not the empty string", "new.zip == ''", update(alice(), withNullZip), false},
		{"null column is present", "has(new.zip)", update(alice(), withNullZip), true},
		{"string NULL is text", "new.zip == 'NULL'", update(alice(), row("2", "Alice", "a", "NULL", "1", "n", "x", "t")), true},
		{"unchanged TOAST is absent", "!has(new.notes)", update(alice(), withNullZip), true},
		{"unchanged TOAST is not changed", "'notes' in changed", update(alice(), withNullZip), false},
		{"null zip is changed", "changed == ['zip']", update(alice(), withNullZip), true},
		{"key-only old tuple", "has(old.id) && !has(old.zip)", update(row("2", "<absent>", "<absent>", "<absent>", "<absent>", "<absent>", "<absent>", "<absent>"), alice()), true},
		{"insert has empty old", "size(old) == 0 && new.id == 2", change.Event{Op: change.OpInsert, Relation: customers, New: alice()}, true},
		{"delete has empty new", "size(new) == 0 && old.zip == '12345'", change.Event{Op: change.OpDelete, Relation: customers, Old: alice()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAgent(t, baseConfig(config.Rule{Name: "probe", When: tt.when, Action: "reject"}))
			got := validateOne(t, a, tt.ev)
			if matched := got.DecidedBy == "rule:probe"; matched != tt.match {
				t.Errorf("%s matched = %v, want %v (decision %+v)", tt.when, matched, tt.match, got)
			}
			if got.Verdict == change.Hold {
				t.Errorf("%s could not be evaluated: %s", tt.when, got.Reason)
			}
		})
	}
}

func TestRulesNullStringMethodHolds(t *testing.T) {
	a := newAgent(t, baseConfig(config.Rule{Name: "zip", When: "!new.zip.matches('^[0-9]{5}$')", Action: "reject"}))
	got := validateOne(t, a, update(alice(), row("2", "Alice", "1 Old Road", "<null>", "10.50", "n", "x", "t")))
	if got.Verdict != change.Hold {
		t.Errorf("verdict = %s, want hold because matches() has no overload for null", got.Verdict)
	}
	if got.DecidedBy != "rule:zip" {
		t.Errorf("decided by = %q, want rule:zip", got.DecidedBy)
	}
	if !strings.Contains(got.Reason, "could not be evaluated") {
		t.Errorf("reason = %q, want the evaluation failure", got.Reason)
	}
}

func TestRulesMissingColumnHolds(t *testing.T) {
	a := newAgent(t, baseConfig(config.Rule{Name: "typo", When: "new.zipcode == ''", Action: "reject"}))
	got := validateOne(t, a, update(alice(), alice()))
	if got.Verdict != change.Hold || !strings.Contains(got.Reason, "no such key") {
		t.Errorf("decision = %+v, want hold naming the missing key", got)
	}
}

func TestRulesTypedValues(t *testing.T) {
	tests := []struct {
		name string
		when string
	}{
		{"int4 is int", "new.id == 2 && type(new.id) == int"},
		{"numeric is double", "new.price > 10 && new.price < 10.6 && type(new.price) == double"},
		{"bool is bool", "new.active == true"},
		{"text is string", "type(new.zip) == string"},
		{"numeric change", "double(new.price) - double(old.price) > 1.0"},
	}
	ev := update(alice(), row("2", "Alice", "1 Old Road", "12345", "10.55", "n", "x", "t"))
	ev.Old[4] = change.TextValue("9.00")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAgent(t, baseConfig(config.Rule{Name: "probe", When: tt.when, Action: "reject"}))
			if got := validateOne(t, a, ev); got.Verdict != change.Reject {
				t.Errorf("%s: decision = %+v, want reject", tt.when, got)
			}
		})
	}
}

func TestChangedColumns(t *testing.T) {
	tests := []struct {
		name string
		ev   change.Event
		want []string
	}{
		{"insert", change.Event{Op: change.OpInsert, Relation: orders, New: row("1", "2")}, []string{"id", "customer_id"}},
		{"delete", change.Event{Op: change.OpDelete, Relation: orders, Old: row("1", "<absent>")}, []string{"id", "customer_id"}},
		{"update of one column", update(alice(), row("2", "Alice", "1 Old Road", "54321", "10.50", "likes email", "crm-app", "t")), []string{"zip"}},
		{"update without old tuple", change.Event{Op: change.OpUpdate, Relation: orders, New: row("1", "3")}, []string{"id", "customer_id"}},
		{"update keeps TOAST out", update(nil, row("2", "Alice", "<toast>", "1", "2", "<toast>", "x", "t")), []string{"id", "name", "zip", "price", "updated_by", "active"}},
		{"truncate", change.Event{Op: change.OpTruncate, Relation: orders}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := changedColumns(&tt.ev)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || got == nil {
				t.Errorf("changedColumns = %q, want %q", got, tt.want)
			}
		})
	}
}
