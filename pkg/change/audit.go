package change

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// ValueDigest is the stand-in that change_events.old_data and new_data store for a value
// whose text form is longer than the audit's value limit: the SHA-256 of the text form in
// lower-case hex, and its length in bytes. Stored values are JSON strings and NULL is
// JSON null, so a JSON object is never a stored value.
type ValueDigest struct {
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
}

// DigestOf returns the digest of a value's text form.
func DigestOf(text string) ValueDigest {
	sum := sha256.Sum256([]byte(text))
	return ValueDigest{SHA256: hex.EncodeToString(sum[:]), Bytes: len(text)}
}

// TupleAuditJSON is TupleJSONWithout with every text value longer than maxValueBytes
// bytes stored as its ValueDigest. A maxValueBytes of 0 stores every value whole.
func TupleAuditJSON(rel *Relation, t Tuple, omit []string, maxValueBytes int) ([]byte, error) {
	if t == nil {
		return nil, nil
	}
	b := make([]byte, 0, auditJSONSize(rel, t, maxValueBytes))
	b = append(b, '{')
	first := true
	for i, v := range t {
		if !v.Known() || i >= len(rel.Columns) || slices.Contains(omit, rel.Columns[i].Name) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = AppendJSONString(b, rel.Columns[i].Name)
		b = append(b, ':')
		switch {
		case v.Kind == Null:
			b = append(b, "null"...)
		case exceedsLimit(v.Text, maxValueBytes):
			b = appendDigestJSON(b, DigestOf(v.Text))
		default:
			b = AppendJSONString(b, v.Text)
		}
	}
	return append(b, '}'), nil
}

// auditJSONSize estimates the length of TupleAuditJSON's output when no byte needs an
// escape, so that the output is allocated once in the common case.
func auditJSONSize(rel *Relation, t Tuple, maxValueBytes int) int {
	size := 2
	for i, v := range t {
		if i >= len(rel.Columns) {
			break
		}
		// The quotes of the name and the value, the colon and the comma.
		size += len(rel.Columns[i].Name) + 6
		switch {
		case v.Kind != Text:
			size += len("null")
		case exceedsLimit(v.Text, maxValueBytes):
			size += len(`{"sha256":"","bytes":}`) + 2*sha256.Size + 20
		default:
			size += len(v.Text)
		}
	}
	return size
}

// appendDigestJSON appends d as json.Marshal encodes it.
func appendDigestJSON(b []byte, d ValueDigest) []byte {
	b = append(b, `{"sha256":`...)
	b = AppendJSONString(b, d.SHA256)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(d.Bytes), 10)
	return append(b, '}')
}

func exceedsLimit(text string, maxValueBytes int) bool {
	return maxValueBytes > 0 && len(text) > maxValueBytes
}

// DigestAuditJSON replaces each string value of a stored old_data or new_data object
// that is longer than maxValueBytes bytes with its ValueDigest. It returns the input
// unchanged, and false, when no value exceeds the limit, when maxValueBytes is 0, and
// for SQL NULL (an empty or null input).
func DigestAuditJSON(raw []byte, maxValueBytes int) ([]byte, bool, error) {
	if maxValueBytes <= 0 || len(raw) == 0 || string(raw) == "null" {
		return raw, false, nil
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, false, fmt.Errorf("decode audit values: %w", err)
	}
	changed := false
	for name, value := range values {
		// A string value is encoded at least as long as its text, so shorter encodings
		// need no decoding.
		if len(value) <= maxValueBytes || value[0] != '"' {
			continue
		}
		var text string
		if err := json.Unmarshal(value, &text); err != nil {
			return nil, false, fmt.Errorf("decode audit value of column %q: %w", name, err)
		}
		if !exceedsLimit(text, maxValueBytes) {
			continue
		}
		digest, err := json.Marshal(DigestOf(text))
		if err != nil {
			return nil, false, err
		}
		values[name] = digest
		changed = true
	}
	if !changed {
		return raw, false, nil
	}
	out, err := json.Marshal(values)
	if err != nil {
		return nil, false, fmt.Errorf("encode audit values: %w", err)
	}
	return out, true, nil
}

// AuditValue is one column of a stored old_data or new_data object: a text value, SQL
// NULL (Text nil), or the digest of a value that was too long to store whole.
type AuditValue struct {
	Text   *string
	Digest *ValueDigest
}

// DecodeAuditJSON decodes a stored old_data or new_data object. It returns nil for SQL
// NULL (an empty or null input).
func DecodeAuditJSON(raw []byte) (map[string]AuditValue, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, err
	}
	out := make(map[string]AuditValue, len(values))
	for name, value := range values {
		var v AuditValue
		switch {
		case string(value) == "null":
		case value[0] == '"':
			if err := json.Unmarshal(value, &v.Text); err != nil {
				return nil, fmt.Errorf("column %q: %w", name, err)
			}
		case value[0] == '{':
			dec := json.NewDecoder(bytes.NewReader(value))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v.Digest); err != nil {
				return nil, fmt.Errorf("column %q: invalid value digest %s: %w", name, value, err)
			}
		default:
			return nil, fmt.Errorf("column %q: invalid value %s: want a JSON string, null or "+
				`{"sha256": …, "bytes": …}`, name, value)
		}
		out[name] = v
	}
	return out, nil
}
