package config

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/change"
)

func TestParseTableName(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    change.TableName
		wantErr string
	}{
		{"schema and table", "crm.customers", change.TableName{Schema: "crm", Name: "customers"}, ""},
		{"no schema means public", "customers", change.TableName{Schema: "public", Name: "customers"}, ""},
		{"unquoted folds", "CRM.Customers", change.TableName{Schema: "crm", Name: "customers"}, ""},
		{"quoted keeps case", `"CRM"."Customers"`, change.TableName{Schema: "CRM", Name: "Customers"}, ""},
		{"quoted dot", `crm."cust.omers"`, change.TableName{Schema: "crm", Name: "cust.omers"}, ""},
		{"quoted space and hyphen", `"my schema"."a-b"`, change.TableName{Schema: "my schema", Name: "a-b"}, ""},
		{"doubled quote", `"a""b"`, change.TableName{Schema: "public", Name: `a"b`}, ""},
		{"digits and dollar", "t1.a$b_2", change.TableName{Schema: "t1", Name: "a$b_2"}, ""},
		{"non-ASCII kept", "Ärger.Tabelle", change.TableName{Schema: "Ärger", Name: "tabelle"}, ""},
		{"63 bytes", strings.Repeat("a", 63), change.TableName{Schema: "public", Name: strings.Repeat("a", 63)}, ""},
		{"empty", "", change.TableName{}, "empty identifier"},
		{"three parts", "db.crm.customers", change.TableName{}, "it has 3 dot-separated parts"},
		{"trailing dot", "crm.", change.TableName{}, "empty identifier"},
		{"leading dot", ".customers", change.TableName{}, `unexpected "."`},
		{"space", "crm customers", change.TableName{}, `unexpected " " after identifier "crm"`},
		{"hyphen unquoted", "crm.a-b", change.TableName{}, `unexpected "-"`},
		{"leading digit", "1abc", change.TableName{}, `unexpected "1"`},
		{"unclosed quote", `"crm.customers`, change.TableName{}, "missing closing double quote"},
		{"empty quoted", `"".customers`, change.TableName{}, "empty quoted identifier"},
		{"text after quote", `"crm"x.customers`, change.TableName{}, `unexpected "x"`},
		{"64 bytes", strings.Repeat("a", 64), change.TableName{}, "64 bytes long"},
		{"NUL byte", "\"a\x00b\"", change.TableName{}, "NUL byte"},
		{"invalid UTF-8", "a\xffb", change.TableName{}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTableName(tt.input)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTableName(%q) error = %v, want it to contain %q", tt.input, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTableName(%q): %v", tt.input, err)
			}
			if got != tt.want {
				t.Errorf("ParseTableName(%q) = %#v, want %#v", tt.input, got, tt.want)
			}
		})
	}
}

func TestFormatTableName(t *testing.T) {
	tests := []struct {
		input change.TableName
		want  string
	}{
		{change.TableName{Schema: "crm", Name: "customers"}, "crm.customers"},
		{change.TableName{Schema: "CRM", Name: "a.b"}, `"CRM"."a.b"`},
		{change.TableName{Schema: "public", Name: `a"b`}, `public."a""b"`},
		{change.TableName{Schema: "public", Name: "1a"}, `public."1a"`},
	}
	for _, tt := range tests {
		if got := FormatTableName(tt.input); got != tt.want {
			t.Errorf("FormatTableName(%#v) = %q, want %q", tt.input, got, tt.want)
		}
	}
}

// FuzzParseTableName checks that a parsed name, quoted as SQL quotes it or formatted as
// the configuration writes it, parses back to the same name.
func FuzzParseTableName(f *testing.F) {
	for _, seed := range []string{
		"crm.customers", "Customers", `"CRM"."a.b"`, `"a""b"`, `"x y".z`,
		"a.b.c", `"`, "", "Ärger.x", "t$1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		name, err := ParseTableName(input)
		if err != nil {
			return
		}
		if name.Schema == "" || name.Name == "" {
			t.Fatalf("ParseTableName(%q) = %#v with an empty part", input, name)
		}

		quoted := pgx.Identifier{name.Schema, name.Name}.Sanitize()
		again, err := ParseTableName(quoted)
		if err != nil {
			t.Fatalf("ParseTableName(%q) of the quoted %q: %v", quoted, input, err)
		}
		if again != name {
			t.Fatalf("quoted round trip of %q: %#v, want %#v", input, again, name)
		}

		formatted := FormatTableName(name)
		again, err = ParseTableName(formatted)
		if err != nil || again != name {
			t.Fatalf("formatted round trip of %q via %q: %#v, %v; want %#v", input, formatted, again, err, name)
		}
	})
}
