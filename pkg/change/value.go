package change

// Kind tells what a tuple column carries, following the pgoutput TupleData kinds.
type Kind uint8

const (
	// Null is an SQL NULL ('n' in a new tuple or a full old tuple).
	Null Kind = iota
	// Text is a value in PostgreSQL's text output format ('t').
	Text
	// Unchanged is an out-of-line TOAST value that the UPDATE did not change ('u'). Its
	// content was not sent, so it must never be written or recorded as NULL.
	Unchanged
	// Absent is a non-key column of a key-only old tuple: not sent, not NULL.
	Absent
)

// Value is one column of a tuple. Text holds the text output of the value and is empty
// unless Kind is Text; an empty string is a Text value with Text == "".
type Value struct {
	Kind Kind
	Text string
}

// TextValue returns a Text value.
func TextValue(s string) Value { return Value{Kind: Text, Text: s} }

// NullValue returns an SQL NULL.
func NullValue() Value { return Value{Kind: Null} }

// Known reports whether the value's content is known: NULL or text.
func (v Value) Known() bool { return v.Kind == Null || v.Kind == Text }

// Equal reports whether two known values are the same: both NULL, or the same text.
func (v Value) Equal(o Value) bool {
	return v.Kind == o.Kind && v.Text == o.Text
}

// JSON returns the value as it is stored in the audit trail: nil for NULL and the text
// form otherwise, so that NULL, the empty string, the string NULL and a jsonb null stay
// apart.
func (v Value) JSON() any {
	if v.Kind == Text {
		return v.Text
	}
	return nil
}
