package validate

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

func compileCustomers(t *testing.T, transform map[string]string) *TableTransforms {
	t.Helper()
	all, err := NewTransforms([]config.Table{
		{Source: orders.Table},
		{Source: customersTable, ActorColumn: "updated_by", Transform: transform},
	}, config.DefaultRuleCostLimit)
	if err != nil {
		t.Fatalf("NewTransforms: %v", err)
	}
	if _, ok := all[orders.Table]; ok {
		t.Error("a table without transforms got transforms")
	}
	return all[customersTable]
}

func TestTransformValues(t *testing.T) {
	tt := compileCustomers(t, map[string]string{
		"zip":     "new.zip.trim()",
		"name":    "new.name.upperAscii()",
		"address": "new.name + ', ' + new.address",
		"price":   "new.price * 2.0",
		"notes":   "op + ' by ' + actor",
	})
	ev := update(alice(), row("2", "alice", "9 New Street", " 54321 ", "10.25", "x", "crm-app", "t"))

	got, err := tt.Transform(context.Background(), &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"zip": "54321", "name": "ALICE", "address": "alice, 9 New Street", "price": "20.5",
		"notes": "update by crm-app",
	}
	for col, text := range want {
		if v := got[col]; v != change.TextValue(text) {
			t.Errorf("%s = %+v, want %q", col, v, text)
		}
	}
	if ev.New[3].Text != " 54321 " {
		t.Errorf("the event's zip became %q", ev.New[3].Text)
	}

	got, err = tt.Transform(context.Background(), &ev, "alice@crm")
	if err != nil {
		t.Fatal(err)
	}
	if v := got["notes"]; v.Text != "update by alice@crm" {
		t.Errorf("notes with a transaction actor = %q, want update by alice@crm", v.Text)
	}
}

func TestTransformSkipsUnsentColumns(t *testing.T) {
	tt := compileCustomers(t, map[string]string{"notes": "new.notes.upperAscii()", "zip": "new.zip"})
	ev := update(alice(), row("2", "Alice", "x", "<null>", "1", "<toast>", "crm-app", "t"))
	got, err := tt.Transform(context.Background(), &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["notes"]; ok {
		t.Errorf("an unchanged TOAST value was transformed to %+v", got["notes"])
	}
	if v, ok := got["zip"]; !ok || v.Kind != change.Null {
		t.Errorf("zip = %+v, want NULL", v)
	}

	del := change.Event{Op: change.OpDelete, Relation: customers, Old: alice()}
	if got, err := tt.Transform(context.Background(), &del, ""); err != nil || len(got) != 0 {
		t.Errorf("delete transformed to %v, %v; want nothing", got, err)
	}
}

func TestTransformRuntimeError(t *testing.T) {
	tt := compileCustomers(t, map[string]string{"zip": "new.zip.trim()"})
	ev := update(alice(), row("2", "Alice", "x", "<null>", "1", "n", "crm-app", "t"))
	_, err := tt.Transform(context.Background(), &ev, "")
	if err == nil {
		t.Fatal("trim() of NULL succeeded")
	}
	if !strings.HasPrefix(err.Error(), `transform of column "zip" failed: `) {
		t.Errorf("error = %v, want it to name the column", err)
	}
}

func TestNewTransformsErrors(t *testing.T) {
	tests := []struct {
		name, col, expr, want string
	}{
		{"undeclared variable", "zip", "nwe.zip.trim()", "tables[1].transform.zip: line 1, column 1: undeclared reference to 'nwe'"},
		{"syntax error", "zip", "new.zip +", "tables[1].transform.zip: line 1, column 10:"},
		{"list result", "zip", "[new.zip]", "tables[1].transform.zip: the expression is of type list(dyn), which has no PostgreSQL text form"},
		{"map result", "zip", "{'a': 1}", "tables[1].transform.zip: the expression is of type map(string, int)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTransforms([]config.Table{
				{Source: orders.Table},
				{Source: customersTable, Transform: map[string]string{tc.col: tc.expr}},
			}, config.DefaultRuleCostLimit)
			if err == nil {
				t.Fatal("NewTransforms accepted the expression")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
			var te *TransformError
			if !errors.As(err, &te) || te.Field != "tables[1].transform."+tc.col {
				t.Errorf("error %v is not a *TransformError of tables[1].transform.%s", err, tc.col)
			}
		})
	}
}

func TestNewTransformsReportsEveryError(t *testing.T) {
	_, err := NewTransforms([]config.Table{{Source: customersTable, Transform: map[string]string{
		"zip": "nwe.zip", "name": "[1]", "notes": "new.notes",
	}}}, config.DefaultRuleCostLimit)
	for _, want := range []string{"tables[0].transform.zip:", "tables[0].transform.name:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "transform.notes") {
		t.Errorf("error = %v names the valid transform of notes", err)
	}
}

func TestTextForm(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 30, 0, 500, time.FixedZone("", 3600))
	tests := []struct {
		in   ref.Val
		want change.Value
	}{
		{types.NullValue, change.NullValue()},
		{types.String("a\tb"), change.TextValue("a\tb")},
		{types.Bool(true), change.TextValue("true")},
		{types.Int(-42), change.TextValue("-42")},
		{types.Uint(42), change.TextValue("42")},
		{types.Double(0.1), change.TextValue("0.1")},
		{types.Double(1e21), change.TextValue("1000000000000000000000")},
		{types.Double(math.NaN()), change.TextValue("NaN")},
		{types.Double(math.Inf(-1)), change.TextValue("-Infinity")},
		{types.Bytes{0xde, 0xad}, change.TextValue(`\xdead`)},
		{types.Timestamp{Time: at}, change.TextValue("2025-03-01T12:30:00.0000005+01:00")},
		{types.Duration{Duration: 90*time.Second + time.Millisecond}, change.TextValue("PT90.001S")},
	}
	for _, tc := range tests {
		got, err := textForm(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("textForm(%v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if _, err := textForm(types.NewStringList(types.DefaultTypeAdapter, []string{"a"})); err == nil {
		t.Error("textForm of a list succeeded")
	}
}

func TestTransformNullValueError(t *testing.T) {
	tt := compileCustomers(t, map[string]string{"name": "new.name.upperAscii()", "zip": "new.zip + '-' + new.notes"})
	ev := update(alice(), row("2", "<null>", "x", "<null>", "1", "<null>", "crm-app", "t"))

	_, err := tt.Transform(context.Background(), &ev, "")
	if err == nil {
		t.Fatal("upperAscii() of NULL succeeded")
	}
	for _, want := range []string{
		`transform of column "name" failed: no such overload: upperAscii(null_type)`,
		"the value of new.name is NULL",
		`"new.name == null ? null : dyn(new.name.upperAscii())"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}

	// The suggested guard compiles and writes NULL.
	guarded := compileCustomers(t, map[string]string{"name": "new.name == null ? null : dyn(new.name.upperAscii())"})
	got, err := guarded.Transform(context.Background(), &ev, "")
	if err != nil {
		t.Fatalf("guarded transform: %v", err)
	}
	if v := got["name"]; v.Kind != change.Null {
		t.Errorf("guarded name = %+v, want NULL", v)
	}

	// Two NULL values are both named, in the order the expression reads them.
	ev = update(alice(), row("2", "Alice", "x", "<null>", "1", "<null>", "crm-app", "t"))
	_, err = compileCustomers(t, map[string]string{"zip": "new.zip + '-' + new.notes"}).
		Transform(context.Background(), &ev, "")
	if want := "the values of new.zip and new.notes are NULL"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
	if want := `"new.zip == null || new.notes == null ? null : dyn(`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
}

func TestTransformCostLimitLongValue(t *testing.T) {
	tt := compileCustomers(t, map[string]string{"notes": "new.notes.upperAscii()"})
	long := strings.Repeat("ab", 1_500_000)
	ev := update(alice(), row("2", "Alice", "x", "12345", "1", long, "crm-app", "t"))

	_, err := tt.Transform(context.Background(), &ev, "")
	if err == nil {
		t.Fatal("upperAscii() of a 3 MB value stayed within the cost limit")
	}
	for _, want := range []string{
		`transform of column "notes" failed: operation cancelled: actual cost limit exceeded`,
		"the value of new.notes is 3000000 bytes long",
		"rule_cost_limit (100000)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}
}

func TestTransformCostLimitShortValues(t *testing.T) {
	all, err := NewTransforms([]config.Table{{Source: customersTable, Transform: map[string]string{
		"name": "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(x, x * 2).size() > 0 ? new.name : ''",
	}}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	ev := update(alice(), row("2", "Alice", "x", "12345", "1", strings.Repeat("n", 5000), "crm-app", "t"))

	_, err = all[customersTable].Transform(context.Background(), &ev, "")
	if err == nil {
		t.Fatal("the transform stayed within a cost limit of 10")
	}
	if want := "the evaluation cost more than rule_cost_limit (10)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
	// The long value of notes is not read, so it is not blamed.
	if strings.Contains(err.Error(), "bytes long") {
		t.Errorf("error = %v blames the length of a value", err)
	}
}
