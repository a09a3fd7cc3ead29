package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// maxValueRunes caps a column value in a message, and longer values end with "…".
const maxValueRunes = 200

// eventTitle returns the one-line summary of an event, used as the Slack headline and
// the mail subject.
func eventTitle(ev *Event) string {
	row := rowText(ev)
	switch ev.Type {
	case EventSync:
		return "Synced " + row
	case EventHold:
		return "Held " + row + " for approval"
	case EventReject:
		return "Rejected " + row
	case EventSkip:
		return "Skipped " + row
	case EventFailed:
		return "Could not apply " + row
	case EventBulkGuard:
		return "Bulk guard stopped a transaction on " + orUnknown(ev.Table)
	case EventBurst:
		return "Burst of changes on " + orUnknown(ev.Table)
	case EventUndo:
		status := "requested"
		if ev.Undo != nil && ev.Undo.Status != "" {
			status = ev.Undo.Status
		}
		return "Undo " + status + " for " + row
	default:
		return string(ev.Type) + " " + row
	}
}

// rowText describes the changed row, such as "update of crm.customers row 42".
func rowText(ev *Event) string {
	var b strings.Builder
	if ev.Op != "" {
		b.WriteString(ev.Op + " of ")
	}
	b.WriteString(orUnknown(ev.Table))
	if ev.RowKey != "" {
		b.WriteString(" row " + ev.RowKey)
	}
	return b.String()
}

// eventLines returns the facts of an event, one per line, for plain-text bodies.
func eventLines(ev *Event) []string {
	var lines []string
	add := func(label, value string) {
		if value != "" {
			lines = append(lines, label+": "+value)
		}
	}

	table := ev.Table
	if ev.TargetTable != "" && ev.TargetTable != ev.Table {
		table += " → " + ev.TargetTable
	}
	add("Table", table)
	add("Row key", ev.RowKey)
	add("Who", ev.Actor)
	if d := ev.Decision; d != nil {
		add("Decision", decisionText(d))
	}
	if u := ev.Undo; u != nil {
		lines = append(lines, undoLines(u)...)
	}
	if v := ev.Volume; v != nil {
		add("Rows", volumeText(v))
	}
	if len(ev.Changes) > 0 {
		lines = append(lines, "Changed:")
		lines = append(lines, changeLines(ev.Changes)...)
	}
	add("Message", ev.Message)
	if ev.ChangeID != uuid.Nil {
		add("Change", ev.ChangeID.String())
	}
	if ev.ThreadID != uuid.Nil {
		add("Thread", ev.ThreadID.String())
	}
	add("Event", ev.ID.String()+" at "+ev.OccurredAt.UTC().Format(time.RFC3339))
	return lines
}

func decisionText(d *Decision) string {
	text := d.Verdict
	if d.DecidedBy != "" {
		text += " by " + d.DecidedBy
	}
	if d.Reason != "" {
		text += ": " + d.Reason
	}
	return text
}

func undoLines(u *Undo) []string {
	lines := []string{"Undo requested by: " + orUnknown(u.Requestor)}
	if u.Reason != "" {
		lines = append(lines, "Reason: "+u.Reason)
	}
	status := u.Status
	if u.Forced {
		status += " (forced over conflicts)"
	}
	if u.Changes > 0 {
		status += fmt.Sprintf(", %d changes", u.Changes)
	}
	lines = append(lines, "Undo status: "+status)
	if u.RequestID != uuid.Nil {
		lines = append(lines, "Undo request: "+u.RequestID.String())
	}
	return lines
}

func volumeText(v *Volume) string {
	text := fmt.Sprintf("%d (limit %d)", v.Rows, v.Limit)
	if v.Window != "" {
		text += " within " + v.Window
	}
	return text
}

// changeLines renders each changed column as "  column: old → new", sorted by column.
func changeLines(changes map[string]ColumnChange) []string {
	columns := slices.Sorted(maps.Keys(changes))
	lines := make([]string, len(columns))
	for i, column := range columns {
		c := changes[column]
		lines[i] = "  " + column + ": " + valueText(c.Old) + " → " + valueText(c.New)
	}
	return lines
}

// valueText shows a JSON value: a string without quotes unless it is empty, null as NULL,
// a missing value as (none), anything else as JSON.
func valueText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "(none)"
	}
	if string(raw) == "null" {
		return "NULL"
	}

	text := string(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		text = s
	}
	if utf8.RuneCountInString(text) > maxValueRunes {
		text = string([]rune(text)[:maxValueRunes]) + "…"
	}
	return text
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// digestTitle summarizes a digest, such as "changesync digest: 42 events (hold 2, sync 40)".
func digestTitle(d *Digest) string {
	types := slices.Sorted(maps.Keys(d.Counts))
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, d.Counts[t])
	}
	return fmt.Sprintf("changesync digest: %d events (%s)", d.Count, strings.Join(parts, ", "))
}

// digestLines returns the body of a digest: the time range, then each sampled event.
func digestLines(d *Digest) []string {
	lines := []string{
		"From " + d.FirstAt.UTC().Format(time.RFC3339) + " to " + d.LastAt.UTC().Format(time.RFC3339) + ".",
		fmt.Sprintf("Sample of %d:", len(d.Sample)),
	}
	for i := range d.Sample {
		ev := &d.Sample[i]
		lines = append(lines, "", "• "+eventTitle(ev))
		for _, line := range eventLines(ev) {
			lines = append(lines, "  "+line)
		}
	}
	if more := d.Count - len(d.Sample); more > 0 {
		lines = append(lines, "", fmt.Sprintf("… and %d more.", more))
	}
	return lines
}
