package preflight

import (
	"bytes"
	"strings"
	"testing"

	"github.com/datasense/changesync/pkg/config"
)

func TestReportWrite(t *testing.T) {
	r := &Report{Results: []Result{
		{Name: "source connection", OK: true, Detail: "PostgreSQL 15"},
		{Name: "source table crm.events", Detail: "has no primary key", Fix: "ALTER TABLE x"},
		{Name: "slot s", OK: true, Warn: true, Detail: "in use", Fix: "stop it"},
	}}
	var out bytes.Buffer
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}

	want := `ok    source connection        PostgreSQL 15
FAIL  source table crm.events  has no primary key
                               fix: ALTER TABLE x
warn  slot s                   in use
                               fix: stop it
3 checks: 1 ok, 1 warning, 1 failed: fix the failures and run check again
`
	if out.String() != want {
		t.Errorf("Write printed\n%s\nwant\n%s", out.String(), want)
	}
	if r.OK() {
		t.Error("OK() = true with a failed check")
	}
}

func TestReportOKWithWarnings(t *testing.T) {
	r := &Report{Results: []Result{{Name: "a", OK: true}, {Name: "b", OK: true, Warn: true}}}
	if !r.OK() {
		t.Error("OK() = false with only a warning")
	}
	var out bytes.Buffer
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "2 checks: 1 ok, 1 warning, 0 failed: ready to run\n") {
		t.Errorf("closing line of\n%s\nwant the ready line", out.String())
	}
}

func TestWritable(t *testing.T) {
	tests := []struct {
		source, target string
		want           bool
	}{
		{"integer", "integer", true},
		{"integer", "bigint", true},
		{"integer", "text", true},
		{"jsonb", "character varying", true},
		{"text", "integer", false},
		{"bigint", "integer", false},
		{"timestamp with time zone", "timestamp without time zone", false},
		{"json", "jsonb", true},
		{"numeric", "double precision", false},
	}
	for _, tt := range tests {
		if got := writable(tt.source, tt.target); got != tt.want {
			t.Errorf("writable(%q, %q) = %v, want %v", tt.source, tt.target, got, tt.want)
		}
	}
}

func TestReportSlotStates(t *testing.T) {
	pid := int32(4242)
	tests := []struct {
		name                                 string
		slotType, plugin, database, walState string
		activePID                            *int32
		wantOK, wantWarn                     bool
		wantFix                              string
	}{
		{"reserved", "logical", "pgoutput", "crm", "reserved", nil, true, false, ""},
		{"lost", "logical", "pgoutput", "crm", "lost", nil, false, false, "run changesync teardown"},
		{"unreserved", "logical", "pgoutput", "crm", "unreserved", nil, true, true, "max_slot_wal_keep_size"},
		{"active", "logical", "pgoutput", "crm", "reserved", &pid, true, true, "stop the other client"},
		{"physical", "physical", "", "", "reserved", nil, false, false, "pg_drop_replication_slot('s')"},
		{"other database", "logical", "pgoutput", "billing", "reserved", nil, false, false, "set source.slot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &checker{cfg: &config.Config{Source: config.Source{Slot: "s"}}, report: &Report{}}
			c.reportSlot("slot s", "crm", tt.slotType, tt.plugin, tt.database, tt.walState, "16 kB", tt.activePID)

			res := c.report.Results[0]
			if res.OK != tt.wantOK || res.Warn != tt.wantWarn {
				t.Errorf("OK %v, Warn %v; want %v, %v; detail %q", res.OK, res.Warn, tt.wantOK, tt.wantWarn, res.Detail)
			}
			if !strings.Contains(res.Fix, tt.wantFix) {
				t.Errorf("fix = %q, want it to contain %q", res.Fix, tt.wantFix)
			}
		})
	}
}
