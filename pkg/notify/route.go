package notify

import (
	"path"
	"slices"
)

// wants reports whether the destination subscribes to the event: its type is listed (or
// "*" is) and its source or target table matches a table pattern. An event without a
// table matches any pattern.
func (d *Destination) wants(ev *Event) bool {
	if !slices.Contains(d.Events, ev.Type) && !slices.Contains(d.Events, "*") {
		return false
	}
	if len(d.Tables) == 0 || (ev.Table == "" && ev.TargetTable == "") {
		return true
	}
	for _, pattern := range d.Tables {
		if matchTable(pattern, ev.Table) || matchTable(pattern, ev.TargetTable) {
			return true
		}
	}
	return false
}

// matchTable matches a validated path.Match pattern against a table name.
func matchTable(pattern, table string) bool {
	if table == "" {
		return false
	}
	ok, _ := path.Match(pattern, table)
	return ok
}
