package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/capture"
	"github.com/datasense/changesync/pkg/change"
)

func TestCatchUpReport(t *testing.T) {
	var out bytes.Buffer
	c := catchUp{
		pipeline: "p", interval: 30 * time.Second, minBytes: 16 << 20,
		log: slog.New(slog.NewJSONHandler(&out, nil)),
	}
	const mib = 1 << 20
	looks := []struct {
		walEnd, confirmed change.LSN
	}{
		{0, 0},                 // no keepalive yet: nothing to compare
		{200 * mib, 100 * mib}, // 100 MiB behind, no rate yet
		{230 * mib, 160 * mib}, // 70 MiB behind: closed 30 MiB in 30s
		{240 * mib, 230 * mib}, // 10 MiB behind: under the threshold
		{300 * mib, 200 * mib}, // 100 MiB behind and growing: no rate
	}
	for _, l := range looks {
		c.check(capture.Stats{ServerWALEnd: l.walEnd, Confirmed: l.confirmed})
	}

	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, rec)
	}
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", len(lines), out.String())
	}
	if got := lines[0]["bytes_behind"]; got != float64(100*mib) {
		t.Errorf("first line: bytes_behind = %v, want %d", got, 100*mib)
	}
	if _, ok := lines[0]["time_left"]; ok {
		t.Errorf("first line has a time_left without an earlier look: %v", lines[0])
	}
	if got := lines[1]["bytes_per_second"]; got != float64(mib) {
		t.Errorf("second line: bytes_per_second = %v, want %d", got, mib)
	}
	if got := lines[1]["time_left"]; got != "1m10s" {
		t.Errorf("second line: time_left = %v, want 1m10s for 70 MiB at 1 MiB/s", got)
	}
	if _, ok := lines[2]["time_left"]; ok {
		t.Errorf("third line has a time_left while the gap grows: %v", lines[2])
	}
	if got := lines[2]["confirmed_lsn"]; got != change.LSN(200*mib).String() {
		t.Errorf("third line: confirmed_lsn = %v, want %s", got, change.LSN(200*mib))
	}
}
