package preflight

import (
	"strings"
	"testing"
)

func TestCheckTypeModifierNarrowing(t *testing.T) {
	const (
		ok   = "ok"
		warn = "warn"
		fail = "fail"
	)
	tests := []struct {
		source, target string
		want           string // ok, warn or fail
		wantDetail     string
		wantType       string // the type of the ALTER COLUMN fix
	}{
		{"numeric(5,2)", "numeric(4,1)", fail, "rounds values to 1 digit after the decimal point without an error", "numeric(5,2)"},
		{"numeric(5,2)", "numeric(4,2)", warn, "rejects values with more than 2 digits before the decimal point", "numeric(5,2)"},
		{"numeric(5,2)", "numeric(6,1)", fail, "rounds values to 1 digit", "numeric(7,2)"},
		{"numeric", "numeric(10,2)", fail, "and rejects values with more than 8 digits before it", "numeric"},
		{"numeric(5,2)", "numeric(7,2)", ok, "", ""},
		{"numeric(5,0)", "numeric(3,-2)", fail, "rounds values to multiples of 1e2 without an error", "numeric(5,0)"},
		{"numeric(5,2)", "numeric", ok, "", ""},
		{"integer", "numeric(4,0)", warn, "more than 4 digits before the decimal point", "numeric(10,0)"},
		{"integer", "numeric(12,2)", ok, "", ""},
		{"varchar(20)", "varchar(10)", warn, "rejects values longer than 10 characters", "character varying(20)"},
		{"text", "varchar(10)", warn, "rejects values longer than 10 characters", "character varying"},
		{"varchar(10)", "varchar(20)", ok, "", ""},
		{"text", "varchar", ok, "", ""},
		{"char(5)", "char(3)", warn, "rejects values longer than 3 characters", "character(5)"},
		{"timestamp", "timestamp(0)", fail, "rounds fractional seconds to 0 digits without an error", "timestamp(6) without time zone"},
		{"timestamptz", "timestamptz(3)", fail, "rounds fractional seconds to 3 digits", "timestamp(6) with time zone"},
		{"timestamp(3)", "timestamptz", ok, "", ""},
		{"time(6)", "time(2)", fail, "rounds fractional seconds to 2 digits", "time(6) without time zone"},
		{"bit(8)", "bit(4)", warn, "takes exactly 4 bits", "bit(8)"},
		{"varbit(8)", "varbit(4)", warn, "rejects values longer than 4 bits", "bit varying(8)"},
		{"bit(4)", "varbit(8)", warn, "", ""}, // a type mismatch, not a narrowing
		{"interval", "interval day", fail, "drops the parts of values finer than DAY without an error", "interval"},
		{"interval", "interval(3)", fail, "rounds fractional seconds to 3 digits", "interval"},
		{"interval day", "interval", ok, "", ""},
		{"interval hour to minute", "interval hour", fail, "finer than HOUR", "interval hour to minute"},
		{"interval", "interval year to month", fail, "finer than MONTH", "interval"},
		{"interval month", "interval year", fail, "finer than YEAR", "interval month"},
		{"interval year to month", "interval month", ok, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.source+" into "+tt.target, func(t *testing.T) {
			t.Parallel()
			d := newDatabases(t, "CREATE SCHEMA crm; CREATE TABLE crm.m (id int PRIMARY KEY, v "+tt.source+")",
				"CREATE SCHEMA billing; CREATE TABLE billing.m (id int PRIMARY KEY, v "+tt.target+")")
			report := check(t, d.config(t, "tables: [{source: crm.m, target: billing.m}]\n"))

			res := result(t, report, "target table billing.m")
			got := ok
			switch {
			case !res.OK:
				got = fail
			case res.Warn:
				got = warn
			}
			if got != tt.want {
				t.Fatalf("result = %s, want %s; detail %q", got, tt.want, res.Detail)
			}
			if tt.wantDetail != "" && !strings.Contains(res.Detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", res.Detail, tt.wantDetail)
			}
			if tt.want != ok && tt.wantType != "" {
				fix := `ALTER TABLE "billing"."m" ALTER COLUMN "v" TYPE ` + tt.wantType
				if !strings.Contains(res.Fix, fix) {
					t.Errorf("fix = %q, want it to contain %q", res.Fix, fix)
				}
			}
			if tt.want == fail && report.OK() {
				t.Error("report is OK although the target changes values without an error")
			}
		})
	}
}

func TestCheckNarrowingNamesColumns(t *testing.T) {
	d := newDatabases(t, "CREATE SCHEMA crm; CREATE TABLE crm.m (id int PRIMARY KEY, amount numeric(5,2))",
		"CREATE SCHEMA billing; CREATE TABLE billing.m (id int PRIMARY KEY, total numeric(4,1))")
	report := check(t, d.config(t, "tables: [{source: crm.m, target: billing.m, columns: {amount: total}}]\n"))

	res := result(t, report, "target table billing.m")
	want := `column "total" is numeric(4,1), narrower than source column "amount" numeric(5,2)`
	if !strings.Contains(res.Detail, want) {
		t.Errorf("detail = %q, want it to contain %q", res.Detail, want)
	}
	if fix := `ALTER TABLE "billing"."m" ALTER COLUMN "total" TYPE numeric(5,2)`; res.Fix != fix {
		t.Errorf("fix = %q, want %q", res.Fix, fix)
	}
}
