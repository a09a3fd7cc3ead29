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

// Wants reports whether any destination of c subscribes to events of type t about table,
// so that producers enqueue only events that someone receives. An empty table matches
// every destination that takes the type.
func (c *Config) Wants(t EventType, table string) bool {
	ev := &Event{Type: t, Table: table}
	for _, d := range c.destinations() {
		if d.wants(ev) {
			return true
		}
	}
	return false
}

// destinations returns the routing settings of every destination.
func (c *Config) destinations() []Destination {
	var all []Destination
	for i := range c.Slack {
		all = append(all, c.Slack[i].Destination)
	}
	for i := range c.Email {
		all = append(all, c.Email[i].Destination)
	}
	for i := range c.Webhooks {
		all = append(all, c.Webhooks[i].Destination)
	}
	return all
}

// HasDestinations reports whether c has any destination.
func (c *Config) HasDestinations() bool { return len(c.destinations()) > 0 }
