package change

import "encoding/json"

// RowKey formats key values the way change_events.row_key stores them: the text of the
// value for a one-column key, and a JSON array of the values (null for NULL) otherwise.
func RowKey(values []Value) string {
	if len(values) == 1 && values[0].Kind == Text {
		return values[0].Text
	}
	parts := make([]any, len(values))
	for i, v := range values {
		parts[i] = v.JSON()
	}
	b, _ := json.Marshal(parts) // strings and nils always marshal
	return string(b)
}

// TupleJSON returns the known values of a tuple as a JSON object keyed by column name,
// in the form of old_data and new_data with every value whole. Unchanged TOAST values and absent columns are left
// out, because their content was not sent.
func TupleJSON(rel *Relation, t Tuple) ([]byte, error) {
	return TupleJSONWithout(rel, t, nil)
}

// TupleJSONWithout is TupleJSON without the columns named in omit, such as columns
// excluded from a sync, whose values must not be copied into the audit either.
func TupleJSONWithout(rel *Relation, t Tuple, omit []string) ([]byte, error) {
	return TupleAuditJSON(rel, t, omit, 0)
}
