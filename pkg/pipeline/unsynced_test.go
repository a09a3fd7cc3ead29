package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/datasense/changesync/pkg/store/dbgen"
)

func heldChange(thread uuid.UUID, key int, reason string) dbgen.InsertChangeEventsParams {
	return dbgen.InsertChangeEventsParams{
		ID: uuid.New(), ThreadID: thread, RowKey: strconv.Itoa(key), TableName: "crm.bulk",
		ChangeType: dbgen.ChangeTypeUpdate, Status: dbgen.ChangeStatusHeld,
		DecisionReason: pgtype.Text{String: reason, Valid: true},
		DecidedBy:      pgtype.Text{String: "guard:bulk", Valid: true},
		NewData:        []byte(`{"v": "large"}`),
	}
}

func TestLogUnsyncedSummarizesGroups(t *testing.T) {
	var out bytes.Buffer
	p := &Pipeline{cfg: Config{Name: "p"}, log: slog.New(slog.NewJSONHandler(&out, nil))}
	bulk, other := uuid.New(), uuid.New()

	// A held bulk transaction arrives in two parts; another thread has one held change.
	var first, second unsyncedLog
	for key := range 300 {
		ev := heldChange(bulk, key, "too many rows")
		first.add(&ev)
	}
	for key := 300; key < 1000; key++ {
		ev := heldChange(bulk, key, "too many rows")
		second.add(&ev)
	}
	ev := heldChange(other, 1, "rule says hold")
	second.add(&ev)
	first.merge(&second)
	p.logUnsynced(context.Background(), &first)

	var single, summaries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec["msg"] {
		case "change not synced":
			single = append(single, rec)
		case "more changes of the thread not synced for the same reason":
			summaries = append(summaries, rec)
		}
	}
	if len(single) != unsyncedShown+1 {
		t.Errorf("%d lines of single changes, want %d: %d of the bulk thread and 1 of the other",
			len(single), unsyncedShown+1, unsyncedShown)
	}
	if len(summaries) != 1 {
		t.Fatalf("%d summary lines, want 1:\n%s", len(summaries), out.String())
	}
	s := summaries[0]
	if s["thread_id"] != bulk.String() || s["count"] != float64(1000-unsyncedShown) || s["total"] != float64(1000) {
		t.Errorf("summary = %v, want thread %s with %d more of 1000", s, bulk, 1000-unsyncedShown)
	}
	if s["level"] != "WARN" || s["reason"] != "too many rows" || s["table"] != "crm.bulk" {
		t.Errorf("summary = %v, want a warning with the reason and the table", s)
	}
	for _, shown := range first.shown {
		if shown.NewData != nil {
			t.Fatal("a kept change still contains its new values")
		}
	}
}
