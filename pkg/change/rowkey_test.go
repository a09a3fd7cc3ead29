package change

import (
	"encoding/json"
	"testing"
)

func TestRowKey(t *testing.T) {
	tests := []struct {
		name string
		in   []Value
		want string
	}{
		{"one text column", []Value{TextValue("42")}, "42"},
		{"empty string", []Value{TextValue("")}, ""},
		{"two columns", []Value{TextValue("1"), TextValue("a,b")}, `["1","a,b"]`},
		{"null part", []Value{TextValue("1"), NullValue()}, `["1",null]`},
		{"one null column", []Value{NullValue()}, `[null]`},
		{"quote inside", []Value{TextValue(`x"y`), TextValue("2")}, `["x\"y","2"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RowKey(tt.in); got != tt.want {
				t.Errorf("RowKey() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTupleJSONKeepsNullsApart(t *testing.T) {
	rel := &Relation{Columns: []Column{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "e"}}}
	tuple := Tuple{NullValue(), TextValue(""), TextValue("NULL"), TextValue("null"), {Kind: Unchanged}}

	raw, err := TupleJSON(rel, tuple)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("TupleJSON returned invalid JSON %s: %v", raw, err)
	}
	if v, ok := got["a"]; !ok || v != nil {
		t.Errorf("a = %v (present %v), want JSON null", v, ok)
	}
	if got["b"] != "" {
		t.Errorf("b = %v, want empty string", got["b"])
	}
	if got["c"] != "NULL" {
		t.Errorf("c = %v, want the string NULL", got["c"])
	}
	if got["d"] != "null" {
		t.Errorf("d = %v, want the string null", got["d"])
	}
	if _, ok := got["e"]; ok {
		t.Error("unchanged TOAST column e is present, want it left out")
	}
}

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", s, err)
		}
		if l.String() != s {
			t.Errorf("ParseLSN(%q).String() = %q", s, l.String())
		}
	}
	if _, err := ParseLSN("16-B3"); err == nil {
		t.Error("ParseLSN(16-B3) succeeded, want an error")
	}
}
