package change

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// jsonStringCases are texts whose JSON encoding needs care: escapes, control characters,
// HTML characters, line and paragraph separators, and invalid or truncated UTF-8.
var jsonStringCases = []string{
	"",
	"plain",
	`quote " and backslash \ and slash /`,
	"\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f\x20\x7f",
	"<script>alert('x') && 1 > 0</script>",
	"line\u2028separator\u2029paragraph",
	"Grüße, 日本語, emoji 😀",
	"\xff",
	"invalid \xc3\x28 pair",
	"truncated \xe2\x82",
	"surrogate half \xed\xa0\x80",
	"overlong \xc0\xaf",
	"\u2028",
	"ends in escape\n",
	"\ufffd literal replacement character",
}

func TestAppendJSONStringMatchesMarshal(t *testing.T) {
	for _, s := range jsonStringCases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendJSONStringRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// Bytes drawn from this alphabet hit every escape and, in random order, many
	// invalid and valid UTF-8 sequences.
	alphabet := []byte("a\"\\<>&\x00\x1f\x7f\n\xe2\x80\xa8\xa9\xc3\xa4\xff\xf0\x9f\x98\x80")
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendJSONStringKeepsPrefix(t *testing.T) {
	got := AppendJSONString([]byte("prefix:"), "a\"b")
	if string(got) != `prefix:"a\"b"` {
		t.Errorf("AppendJSONString with a prefix = %s, want prefix:\"a\\\"b\"", got)
	}
}

func TestAppendValueJSONMatchesMarshal(t *testing.T) {
	values := []Value{TextValue(""), TextValue("NULL"), TextValue("x<y"), NullValue(), {Kind: Unchanged}, {Kind: Absent}}
	for _, v := range values {
		want, _ := json.Marshal(v.JSON())
		if got := AppendValueJSON(nil, v); string(got) != string(want) {
			t.Errorf("AppendValueJSON(%+v) = %s, want %s", v, got, want)
		}
	}
}
