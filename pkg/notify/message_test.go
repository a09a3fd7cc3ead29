package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestValueText(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "string", raw: `"12345"`, want: "12345"},
		{name: "empty string", raw: `""`, want: `""`},
		{name: "null", raw: `null`, want: "NULL"},
		{name: "absent", raw: ``, want: "(none)"},
		{name: "number", raw: `42`, want: "42"},
		{name: "object", raw: `{"a": 1}`, want: `{"a": 1}`},
		{name: "long", raw: `"` + strings.Repeat("x", 300) + `"`, want: strings.Repeat("x", maxValueRunes) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := valueText(json.RawMessage(tt.raw)); got != tt.want {
				t.Errorf("valueText(%s) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestEventTitles(t *testing.T) {
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Type: EventSync, Op: "update", Table: "crm.customers", RowKey: "42"}, "Synced update of crm.customers row 42"},
		{Event{Type: EventHold, Op: "delete", Table: "crm.customers", RowKey: "7"}, "Held delete of crm.customers row 7 for approval"},
		{Event{Type: EventReject, Table: "crm.customers", RowKey: "7"}, "Rejected crm.customers row 7"},
		{Event{Type: EventSkip, Table: "crm.customers"}, "Skipped crm.customers"},
		{Event{Type: EventFailed, Op: "insert", Table: "crm.customers", RowKey: "1"}, "Could not apply insert of crm.customers row 1"},
		{Event{Type: EventBulkGuard, Table: "crm.customers"}, "Bulk guard stopped a transaction on crm.customers"},
		{Event{Type: EventBurst}, "Burst of changes on (unknown)"},
		{Event{Type: EventUndo, Table: "crm.customers", RowKey: "42", Undo: &Undo{Status: "conflict"}}, "Undo conflict for crm.customers row 42"},
	}
	for _, tt := range tests {
		t.Run(string(tt.ev.Type), func(t *testing.T) {
			if got := eventTitle(&tt.ev); got != tt.want {
				t.Errorf("eventTitle = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventLines(t *testing.T) {
	ev := Event{
		ID: uuid.MustParse("01900000-0000-7000-8000-000000000001"), Type: EventUndo,
		OccurredAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Table:      "crm.customers", TargetTable: "billing.customers", RowKey: "42", Actor: "alice",
		Changes: map[string]ColumnChange{
			"zip":     {Old: json.RawMessage(`"54321"`), New: json.RawMessage(`"12345"`)},
			"address": {Old: json.RawMessage(`null`), New: json.RawMessage(`"1 Main St"`)},
		},
		Undo:   &Undo{Requestor: "bob", Reason: "customer asked", Status: "applied", Changes: 2},
		Volume: &Volume{Rows: 300, Limit: 100, Window: "1m0s"},
	}
	got := strings.Join(eventLines(&ev), "\n")
	want := strings.Join([]string{
		"Table: crm.customers → billing.customers",
		"Row key: 42",
		"Who: alice",
		"Undo requested by: bob",
		"Reason: customer asked",
		"Undo status: applied, 2 changes",
		"Rows: 300 (limit 100) within 1m0s",
		"Changed:",
		"  address: NULL → 1 Main St",
		"  zip: 54321 → 12345",
		"Event: 01900000-0000-7000-8000-000000000001 at 2025-03-01T12:00:00Z",
	}, "\n")
	if got != want {
		t.Errorf("eventLines:\n%s\nwant:\n%s", got, want)
	}
}

func TestSlackEscapesReservedCharacters(t *testing.T) {
	got := slackText("a <b> & c", []string{"x > y"})
	want := "*a &lt;b&gt; &amp; c*\nx &gt; y"
	if got != want {
		t.Errorf("slackText = %q, want %q", got, want)
	}
}

func TestDigestSummary(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	events := []Event{
		{ID: uuid.New(), Type: EventSync, OccurredAt: t0.Add(time.Minute)},
		{ID: uuid.New(), Type: EventHold, OccurredAt: t0},
		{ID: uuid.New(), Type: EventSync, OccurredAt: t0.Add(2 * time.Minute)},
	}
	d := newDigest("ops", events, 2)

	if d.Count != 3 || d.Counts[EventSync] != 2 || d.Counts[EventHold] != 1 {
		t.Errorf("count %d, counts %v, want 3 with sync 2 and hold 1", d.Count, d.Counts)
	}
	if !d.FirstAt.Equal(t0) || !d.LastAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("range %s to %s, want %s to %s", d.FirstAt, d.LastAt, t0, t0.Add(2*time.Minute))
	}
	if len(d.Sample) != 2 {
		t.Errorf("sample has %d events, want 2", len(d.Sample))
	}
	if again := newDigest("ops", events, 2); again.ID != d.ID {
		t.Error("digest id differs for the same events, want it stable across retries")
	}
	if other := newDigest("ops", events[:2], 2); other.ID == d.ID {
		t.Error("digest id is the same for other events")
	}
	if title := digestTitle(d); title != "changesync digest: 3 events (hold 1, sync 2)" {
		t.Errorf("digestTitle = %q", title)
	}
	if body := strings.Join(digestLines(d), "\n"); !strings.Contains(body, "… and 1 more.") {
		t.Errorf("digest body lacks the remainder:\n%s", body)
	}
}

func TestDestinationWants(t *testing.T) {
	d := Destination{Events: []EventType{EventHold}, Tables: []string{"crm.*"}}
	tests := []struct {
		name string
		ev   Event
		want bool
	}{
		{name: "type and source table", ev: Event{Type: EventHold, Table: "crm.customers"}, want: true},
		{name: "target table", ev: Event{Type: EventHold, Table: "x.y", TargetTable: "crm.copy"}, want: true},
		{name: "other table", ev: Event{Type: EventHold, Table: "sales.orders"}, want: false},
		{name: "other type", ev: Event{Type: EventSync, Table: "crm.customers"}, want: false},
		{name: "no table", ev: Event{Type: EventHold}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.wants(&tt.ev); got != tt.want {
				t.Errorf("wants = %v, want %v", got, tt.want)
			}
		})
	}

	all := Destination{Events: []EventType{"*"}}
	if !all.wants(&Event{Type: EventBurst, Table: "any.table"}) {
		t.Error(`a destination with events ["*"] does not want a burst event`)
	}
}
