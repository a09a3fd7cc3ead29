package capture

import (
	"strings"
	"testing"

	"github.com/datasense/changesync/pkg/change"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	valid := Config{URL: "postgres://u@localhost/db", Publication: "p", Slot: "s"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"empty url", func(c *Config) { c.URL = "" }, "source url is empty"},
		{
			"unparsable url", func(c *Config) { c.URL = "postgres://u@localhost:port/db" },
			"parse source url",
		},
		{"empty slot", func(c *Config) { c.Slot = "" }, "invalid slot name"},
		{"upper-case slot", func(c *Config) { c.Slot = "Slot" }, "invalid slot name"},
		{"slot with space", func(c *Config) { c.Slot = "a b" }, "invalid slot name"},
		{"slot too long", func(c *Config) { c.Slot = strings.Repeat("s", 64) }, "invalid slot name"},
		{"empty publication", func(c *Config) { c.Publication = "" }, "invalid publication name"},
		{
			"publication too long", func(c *Config) { c.Publication = strings.Repeat("p", 64) },
			"invalid publication name",
		},
		{"table without schema", func(c *Config) {
			c.Tables = []change.TableName{{Name: "t"}}
		}, "invalid table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	cfg := Config{URL: "postgres://u:secret@localhost/db", Publication: "p", Slot: "s_1"}
	r, err := New(cfg, WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.StatusInterval != DefaultStatusInterval || r.cfg.SlotTimeout != DefaultSlotTimeout {
		t.Errorf("intervals = %s, %s; want the defaults", r.cfg.StatusInterval, r.cfg.SlotTimeout)
	}
	if r.log == nil {
		t.Error("WithLogger(nil) left no logger")
	}
}

func TestReplicationConfigPinsSettings(t *testing.T) {
	r, err := New(Config{
		URL: "postgres://u@localhost/db?datestyle=German&TIMEZONE=Asia%2FKathmandu" +
			"&application_name=app",
		Publication: "p", Slot: "s",
	})
	if err != nil {
		t.Fatal(err)
	}
	params := r.replCfg.RuntimeParams

	want := map[string]string{
		"replication": "database", "DateStyle": "ISO, MDY", "TimeZone": "UTC",
		"IntervalStyle": "postgres", "extra_float_digits": "3", "bytea_output": "hex",
		"application_name": "app",
	}
	for k, v := range want {
		if params[k] != v {
			t.Errorf("startup parameter %s = %q, want %q", k, params[k], v)
		}
	}
	for _, k := range []string{"datestyle", "TIMEZONE"} {
		if _, ok := params[k]; ok {
			t.Errorf("startup parameter %s from the URL is still set", k)
		}
	}
	if _, ok := r.connCfg.RuntimeParams["replication"]; ok {
		t.Error("the normal connection asks for replication")
	}
}

func TestPluginArgsQuotePublication(t *testing.T) {
	r, err := New(Config{URL: "postgres://u@localhost/db", Publication: `it's "odd"`, Slot: "s"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.pluginArgs(13), ", ")
	want := `proto_version '1', publication_names '"it''s ""odd"""', messages 'true'`
	if got != want {
		t.Errorf("plugin args for version 13 = %s, want %s", got, want)
	}
	got = strings.Join(r.pluginArgs(15), ", ")
	want = `proto_version '2', streaming 'on', publication_names '"it''s ""odd"""', messages 'true'`
	if got != want {
		t.Errorf("plugin args for version 15 = %s, want %s", got, want)
	}
	r.cfg.DisableStreaming = true
	if got := strings.Join(r.pluginArgs(15), ", "); !strings.HasPrefix(got, "proto_version '1',") {
		t.Errorf("plugin args with streaming disabled = %s, want protocol version 1", got)
	}
}

func TestPermanentErrorMessage(t *testing.T) {
	r, err := New(Config{URL: "postgres://u@localhost/db", Publication: "p", Slot: "s"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		kind error
		want string
	}{
		{"missing slot", r.checkSlot(slotState{}), ErrSlotMissing, "changesync setup"},
		{"lost slot", r.checkSlot(slotState{
			exists: true, slotType: "logical", plugin: "pgoutput",
			database: "db", current: "db", walStatus: "lost",
		}), ErrSlotLost, "max_slot_wal_keep_size"},
		{
			"physical slot", r.checkSlot(slotState{exists: true, slotType: "physical"}), ErrSlotMismatch,
			"configure another slot name",
		},
		{"slot of another database", r.checkSlot(slotState{
			exists: true, slotType: "logical",
			plugin: "pgoutput", database: "other", current: "db",
		}), ErrSlotMismatch, `"other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !isPermanent(tt.err, tt.kind) {
				t.Fatalf("error = %v, want a PermanentError of kind %v", tt.err, tt.kind)
			}
			if !strings.Contains(tt.err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", tt.err, tt.want)
			}
		})
	}
	if err := r.checkSlot(slotState{
		exists: true, slotType: "logical", plugin: "pgoutput",
		database: "db", current: "db", walStatus: "reserved",
	}); err != nil {
		t.Errorf("healthy slot: %v", err)
	}
}
