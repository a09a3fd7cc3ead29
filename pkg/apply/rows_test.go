package apply

import (
	"encoding/json"
	"testing"

	"github.com/datasense/changesync/pkg/change"
)

// trickyValues are values whose JSON encoding needs escapes, HTML characters, line
// separators or a replacement for invalid UTF-8.
var trickyValues = []change.Value{
	change.TextValue(""),
	change.TextValue(`a "quoted" \ value`),
	change.TextValue("tab\tnew line\n nul\x00 esc\x1b del\x7f"),
	change.TextValue("<b>&amp;</b>"),
	change.TextValue("\u2028\u2029"),
	change.TextValue("invalid \xff\xc3 UTF-8"),
	change.TextValue("NULL"),
	change.NullValue(),
}

func TestDiffMatchesMarshal(t *testing.T) {
	d := newDiff()
	want := []byte{'{'}
	for i, v := range trickyValues {
		col := string(rune('a'+i)) + `<"\` + v.Text
		old := trickyValues[len(trickyValues)-1-i]
		d.add(col, old, v)

		if i > 0 {
			want = append(want, ',')
		}
		name, _ := json.Marshal(col)
		oldJSON, _ := json.Marshal(old.JSON())
		newJSON, _ := json.Marshal(v.JSON())
		want = append(want, name...)
		want = append(want, `:{"old":`...)
		want = append(want, oldJSON...)
		want = append(want, `,"new":`...)
		want = append(want, newJSON...)
		want = append(want, '}')
	}
	want = append(want, '}')

	if got := d.bytes(); string(got) != string(want) {
		t.Errorf("diff =\n%s\nwant\n%s", got, want)
	}
}

func TestDiffEmptyIsNil(t *testing.T) {
	if got := newDiff().bytes(); got != nil {
		t.Errorf("empty diff = %q, want nil", got)
	}
}

func TestKeyJSONMatchesMarshal(t *testing.T) {
	keys := [][]change.Value{nil, {change.TextValue("1")}, trickyValues}
	for _, key := range keys {
		parts := make([]any, len(key))
		for i, v := range key {
			parts[i] = v.JSON()
		}
		want, _ := json.Marshal(parts)
		if got := keyJSON(key); string(got) != string(want) {
			t.Errorf("keyJSON(%v) = %s, want %s", key, got, want)
		}
	}
}
