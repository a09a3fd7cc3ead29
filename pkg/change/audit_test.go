package change

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestTupleAuditJSONDigestsLongValues(t *testing.T) {
	rel := &Relation{Columns: []Column{{Name: "at"}, {Name: "over"}, {Name: "multi"}, {Name: "null"}, {Name: "toast"}}}
	atLimit := strings.Repeat("a", 8)
	over := strings.Repeat("b", 9)
	multi := "ääää!" // 9 bytes in 5 characters
	tuple := Tuple{TextValue(atLimit), TextValue(over), TextValue(multi), NullValue(), {Kind: Unchanged}}

	raw, err := TupleAuditJSON(rel, tuple, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("TupleAuditJSON returned invalid JSON %s: %v", raw, err)
	}
	if got["at"] != atLimit {
		t.Errorf("at = %v, want the value of 8 bytes whole", got["at"])
	}
	wantOver := map[string]any{"sha256": sha256Hex(over), "bytes": float64(9)}
	if !reflect.DeepEqual(got["over"], wantOver) {
		t.Errorf("over = %v, want %v", got["over"], wantOver)
	}
	wantMulti := map[string]any{"sha256": sha256Hex(multi), "bytes": float64(9)}
	if !reflect.DeepEqual(got["multi"], wantMulti) {
		t.Errorf("multi = %v, want %v, counted in bytes", got["multi"], wantMulti)
	}
	if v, ok := got["null"]; !ok || v != nil {
		t.Errorf("null = %v (present %v), want JSON null", v, ok)
	}
	if _, ok := got["toast"]; ok {
		t.Error("unchanged TOAST column is present, want it left out")
	}
}

func TestTupleAuditJSONZeroLimitKeepsValues(t *testing.T) {
	rel := &Relation{Columns: []Column{{Name: "v"}}}
	long := strings.Repeat("x", 10_000)
	raw, err := TupleAuditJSON(rel, Tuple{TextValue(long)}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(map[string]string{"v": long})
	if string(raw) != string(want) {
		t.Errorf("TupleAuditJSON with limit 0 = %.80s…, want the value whole", raw)
	}
}

func TestDigestAuditJSON(t *testing.T) {
	long := strings.Repeat("\"", 9) // 9 bytes of text, 20 bytes of JSON
	raw, _ := json.Marshal(map[string]any{"short": "abc", "long": long, "null": nil})

	out, changed, err := DigestAuditJSON(raw, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("changed = false, want true")
	}
	values, err := DecodeAuditJSON(out)
	if err != nil {
		t.Fatalf("DecodeAuditJSON(%s): %v", out, err)
	}
	if v := values["short"]; v.Text == nil || *v.Text != "abc" {
		t.Errorf("short = %+v, want the text abc", v)
	}
	if v := values["null"]; v.Text != nil || v.Digest != nil {
		t.Errorf("null = %+v, want SQL NULL", v)
	}
	want := ValueDigest{SHA256: sha256Hex(long), Bytes: 9}
	if v := values["long"]; v.Digest == nil || *v.Digest != want {
		t.Errorf("long = %+v, want the digest %+v", v, want)
	}

	// A value whose JSON is longer than the limit but whose text is not stays whole.
	for _, limit := range []int{0, 9} {
		same, changed, err := DigestAuditJSON(raw, limit)
		if err != nil || changed || string(same) != string(raw) {
			t.Errorf("DigestAuditJSON(limit %d) = %s, %v, %v, want the input unchanged", limit, same, changed, err)
		}
	}
	if out, changed, err := DigestAuditJSON([]byte("null"), 8); err != nil || changed || string(out) != "null" {
		t.Errorf("DigestAuditJSON(null) = %s, %v, %v, want null unchanged", out, changed, err)
	}
}

func TestDecodeAuditJSONRejectsOtherValues(t *testing.T) {
	for _, raw := range []string{
		`{"a": 1}`,
		`{"a": ["x"]}`,
		`{"a": {"sha256": "00", "bytes": 1, "extra": true}}`,
		`["a"]`,
	} {
		if got, err := DecodeAuditJSON([]byte(raw)); err == nil {
			t.Errorf("DecodeAuditJSON(%s) = %+v, want an error", raw, got)
		}
	}
}

// marshalAuditJSON builds old_data or new_data with json.Marshal, as a reference for
// TupleAuditJSON's own encoder.
func marshalAuditJSON(rel *Relation, tuple Tuple, omit []string, maxValueBytes int) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for i, v := range tuple {
		if !v.Known() || slices.Contains(omit, rel.Columns[i].Name) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		name, _ := json.Marshal(rel.Columns[i].Name)
		b.Write(name)
		b.WriteByte(':')
		stored := v.JSON()
		if v.Kind == Text && maxValueBytes > 0 && len(v.Text) > maxValueBytes {
			stored = DigestOf(v.Text)
		}
		val, _ := json.Marshal(stored)
		b.Write(val)
	}
	b.WriteByte('}')
	return b.String()
}

func TestTupleAuditJSONMatchesMarshal(t *testing.T) {
	var rel Relation
	var tuple Tuple
	for i, s := range jsonStringCases {
		rel.Columns = append(rel.Columns, Column{Name: fmt.Sprintf("c%d %s", i, s)})
		tuple = append(tuple, TextValue(s))
	}
	rel.Columns = append(rel.Columns, Column{Name: "null"}, Column{Name: "toast"}, Column{Name: "omitted"})
	tuple = append(tuple, NullValue(), Value{Kind: Unchanged}, TextValue("secret"))
	omit := []string{"omitted"}

	for _, limit := range []int{0, 4, 16} {
		got, err := TupleAuditJSON(&rel, tuple, omit, limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalAuditJSON(&rel, tuple, omit, limit); string(got) != want {
			t.Errorf("TupleAuditJSON with limit %d =\n%s\nwant\n%s", limit, got, want)
		}
	}
}
