package apply

import (
	"testing"
)

// planOf returns the plan of customersRel onto a target crm.customers whose id is
// GENERATED ALWAYS AS IDENTITY.
func planOf(t *testing.T) *plan {
	t.Helper()
	target := &targetTable{Name: customers, byName: map[string]int{}}
	for _, name := range []string{"id", "name", "address", "zip", "notes"} {
		target.byName[name] = len(target.Columns)
		target.Columns = append(target.Columns, targetColumn{Name: name, Type: "text", IdentityAlways: name == "id"})
	}
	p, err := newPlan(&TableSpec{Source: customers, Target: customers}, target, customersRel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanUpdateSQLPerColumnSet(t *testing.T) {
	p := planOf(t)
	cases := []struct {
		cols []int
		want string
	}{
		{[]int{2}, `UPDATE "crm"."customers" SET "address" = $1 WHERE "id" = $2`},
		{[]int{2, 3}, `UPDATE "crm"."customers" SET "address" = $1, "zip" = $2 WHERE "id" = $3`},
		{[]int{1}, `UPDATE "crm"."customers" SET "name" = $1 WHERE "id" = $2`},
	}
	for range 2 { // the second round reads the cached texts
		for _, c := range cases {
			if got := p.updateSQL(c.cols); got != c.want {
				t.Errorf("updateSQL(%v) = %q, want %q", c.cols, got, c.want)
			}
		}
	}
}

func TestPlanInsertSQLOverridesIdentity(t *testing.T) {
	p := planOf(t)
	want := `INSERT INTO "crm"."customers" ("id", "name") OVERRIDING SYSTEM VALUE VALUES ($1, $2)`
	if got := p.insertSQL([]int{0, 1}); got != want {
		t.Errorf("insertSQL(id, name) = %q, want %q", got, want)
	}
	want = `INSERT INTO "crm"."customers" ("name", "zip") VALUES ($1, $2)`
	if got := p.insertSQL([]int{1, 3}); got != want {
		t.Errorf("insertSQL(name, zip) = %q, want %q", got, want)
	}
}

func TestPlanDeleteSQL(t *testing.T) {
	p := planOf(t)
	want := `DELETE FROM "crm"."customers" WHERE "id" = $1`
	for range 2 {
		if got := p.deleteSQL(); got != want {
			t.Errorf("deleteSQL() = %q, want %q", got, want)
		}
	}
}

func TestPlanStatementCacheBounded(t *testing.T) {
	p := planOf(t)
	for i := range maxPrepared + 10 {
		p.cacheText(textKey(nil, 'u', []int{i}), "statement")
	}
	if n := len(p.texts.byKey); n != maxPrepared {
		t.Errorf("cached texts = %d, want %d", n, maxPrepared)
	}
	if _, ok := p.cachedText(textKey(nil, 'u', []int{maxPrepared + 5})); ok {
		t.Error("a text beyond the bound was cached")
	}
}
