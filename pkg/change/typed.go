package change

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// ErrUnchanged is returned for an unchanged out-of-line TOAST value, whose content the
// server did not send.
var ErrUnchanged = errors.New("value is an unchanged TOAST value that was not sent")

// ErrAbsent is returned for a non-key column of a key-only old tuple, which the server
// did not send.
var ErrAbsent = errors.New("value is absent from a key-only old tuple")

// Typed decodes the text value of column col into the Go value that pgx's type map gives
// for the column's type OID: int32 for int4, time.Time for timestamptz, and so on. NULL
// becomes nil. A type missing from the map (an enum, a domain, a user-defined type)
// comes back as the text itself. An Unchanged or Absent value returns an error that wraps
// ErrUnchanged or ErrAbsent, because its content is not known.
func (r *Relation) Typed(m *pgtype.Map, col int, v Value) (any, error) {
	if col < 0 || col >= len(r.Columns) {
		return nil, fmt.Errorf("relation %s has no column %d: it has %d columns",
			r.Table, col, len(r.Columns))
	}
	c := r.Columns[col]

	switch v.Kind {
	case Null:
		return nil, nil
	case Unchanged:
		return nil, fmt.Errorf("column %s of %s: %w", c.Name, r.Table, ErrUnchanged)
	case Absent:
		return nil, fmt.Errorf("column %s of %s: %w", c.Name, r.Table, ErrAbsent)
	case Text:
		return decodeText(m, c, v.Text)
	default:
		return nil, fmt.Errorf("column %s of %s: invalid value kind %d", c.Name, r.Table, v.Kind)
	}
}

// decodeText decodes one text-format value with the codec registered for its type OID.
func decodeText(m *pgtype.Map, c Column, text string) (any, error) {
	t, ok := m.TypeForOID(c.TypeOID)
	if !ok {
		return text, nil
	}

	v, err := t.Codec.DecodeValue(m, c.TypeOID, pgtype.TextFormatCode, []byte(text))
	if err != nil {
		return nil, fmt.Errorf("decode column %s as %s (oid %d): %w", c.Name, t.Name, c.TypeOID, err)
	}
	return v, nil
}

// TypedRow decodes every known value of a tuple with Typed and returns them keyed by
// column name. Unchanged and Absent values are left out, because their content was not
// sent, so a missing key means "not known" and a nil value means NULL.
func (r *Relation) TypedRow(m *pgtype.Map, t Tuple) (map[string]any, error) {
	if err := r.Validate(t); err != nil {
		return nil, err
	}

	row := make(map[string]any, len(t))
	for i, v := range t {
		if !v.Known() {
			continue
		}
		typed, err := r.Typed(m, i, v)
		if err != nil {
			return nil, err
		}
		row[r.Columns[i].Name] = typed
	}
	return row, nil
}
