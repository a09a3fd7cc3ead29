package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/change"
)

// envOf returns a lookup function over a fixed set of variables.
func envOf(vars map[string]string) LookupEnv {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var noEnv = envOf(nil)

// minimal is the smallest valid configuration: a source and one table in another
// database.
const minimal = `
source: {url: "postgres://crm@db:5432/crm"}
target: {url: "postgres://billing@db:5432/billing"}
tables: [{source: crm.customers}]
`

func TestLoadDesignExample(t *testing.T) {
	env := envOf(map[string]string{"CHANGESYNC_JWT_SECRET": "test-secret"})
	cfg, err := LoadFile(filepath.Join("testdata", "design.yaml"), env)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}

	customers := change.TableName{Schema: "crm", Name: "customers"}
	checks := []struct {
		name      string
		got, want any
	}{
		{"pipeline", cfg.Pipeline, "changesync"},
		{"source url", cfg.Source.URL, "postgres://crm@db:5432/crm"},
		{"target url", cfg.Target.URL, "postgres://billing@db:5432/billing"},
		{"table source", cfg.Tables[0].Source, customers},
		{"table target", cfg.Tables[0].Target, change.TableName{Schema: "billing", Name: "customers"}},
		{"key", cfg.Tables[0].Key, []string{"id"}},
		{"columns", cfg.Tables[0].Columns, map[string]string{"address": "billing_address"}},
		{"exclude", cfg.Tables[0].Exclude, []string{"password_hash"}},
		{"transform", cfg.Tables[0].Transform, map[string]string{"zip": "new.zip.trim()"}},
		{"rule", cfg.Rules[0], Rule{
			Name: "zip-is-valid", Table: "crm.customers",
			When: "op != 'delete' && !new.zip.matches('^[0-9]{5}$')", Action: "reject",
		}},
		{"guard", cfg.Guard, Guard{
			MaxRowsPerTx: 1000, Action: "hold",
			Burst: Burst{Factor: 10, Window: time.Hour, MinChanges: 1000},
		}},
		{"llm columns", cfg.LLM.Columns, []string{"crm.customers.notes"}},
		{"llm timeout", cfg.LLM.Timeout, 10 * time.Second},
		{"api auth", cfg.API.Auth.JWTSecretEnv, "CHANGESYNC_JWT_SECRET"},
		{"log", cfg.Log, Log{Level: "info", Format: "json"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if cfg.Notify.Kind == 0 || len(cfg.Notify.Content) != 6 {
		t.Errorf("notify has %d nodes, want the three sections kept for the notify package",
			len(cfg.Notify.Content))
	}
}

func TestLoadPublicationDefaultsToSlot(t *testing.T) {
	cfg, err := Parse([]byte(`
source: {url: "postgres://crm@db:5432/crm", slot: orders_sync}
target: {url: "postgres://billing@db:5432/billing"}
tables: [{source: crm.customers}]
`), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Source.Publication != "orders_sync" {
		t.Errorf("publication = %q, want the slot name orders_sync", cfg.Source.Publication)
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"pipeline", cfg.Pipeline, "changesync"},
		{"publication", cfg.Source.Publication, "changesync"},
		{"slot", cfg.Source.Slot, "changesync"},
		{"snapshot", cfg.Source.Snapshot, "initial"},
		{"status interval", cfg.Source.StatusInterval, 10 * time.Second},
		{"heartbeat", cfg.Source.Heartbeat, time.Minute},
		{"streaming", cfg.Source.Streaming, true},
		{"spill dir", cfg.Source.SpillDir, ""},
		{"target schema", cfg.Target.Schema, "changesync"},
		{"table target", cfg.Tables[0].Target, cfg.Tables[0].Source},
		{"truncate", cfg.Tables[0].Truncate, "hold"},
		{"batch max events", cfg.Apply.BatchMaxEvents, 5000},
		{"batch max wait", cfg.Apply.BatchMaxWait, 200 * time.Millisecond},
		{"on existing row", cfg.Apply.OnExistingRow, "update"},
		{"on missing row", cfg.Apply.OnMissingRow, "insert"},
		{"guard action", cfg.Guard.Action, "hold"},
		{"llm enabled", cfg.LLM.Enabled, false},
		{"llm api key env", cfg.LLM.APIKeyEnv, "OPENAI_API_KEY"},
		{"llm timeout", cfg.LLM.Timeout, 10 * time.Second},
		{"llm on error", cfg.LLM.OnError, "hold"},
		{"api listen", cfg.API.Listen, "127.0.0.1:8080"},
		{"audit max value bytes", cfg.Audit.MaxValueBytes, 1 << 20},
		{"log level", cfg.Log.Level, "info"},
		{"log format", cfg.Log.Format, "json"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadExplicitZeroes(t *testing.T) {
	cfg, err := Parse([]byte(`
source: {url: "postgres://crm@db/crm", heartbeat: 0, slot: orders_sync, streaming: false}
target: {url: "postgres://billing@db/billing"}
tables: [{source: crm.orders}]
apply: {batch_max_wait: 0s}
audit: {max_value_bytes: 0}
`), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Source.Heartbeat != 0 {
		t.Errorf("heartbeat = %s, want 0 (off)", cfg.Source.Heartbeat)
	}
	if cfg.Apply.BatchMaxWait != 0 {
		t.Errorf("batch_max_wait = %s, want 0", cfg.Apply.BatchMaxWait)
	}
	if cfg.Audit.MaxValueBytes != 0 {
		t.Errorf("audit.max_value_bytes = %d, want 0 (store every value whole)", cfg.Audit.MaxValueBytes)
	}
	if cfg.Source.Streaming {
		t.Error("streaming = true, want false as set")
	}
	if cfg.Pipeline != "orders_sync" {
		t.Errorf("pipeline = %q, want the slot name orders_sync", cfg.Pipeline)
	}
}

func TestLoadTargetDefaultsToSource(t *testing.T) {
	cfg, err := Parse([]byte(`
source: {url: "postgres://crm@db/crm"}
tables: [{source: crm.customers, target: billing.customers}]
`), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Target.URL != cfg.Source.URL {
		t.Errorf("target url = %q, want the source url %q", cfg.Target.URL, cfg.Source.URL)
	}
}

func TestLoadEnvironment(t *testing.T) {
	const (
		fileSource = "postgres://crm@db/crm"
		fileTarget = "postgres://billing@db/billing"
		envSource  = "postgres://crm@other/crm"
		envTarget  = "postgres://billing@other/billing"
	)
	tests := []struct {
		name       string
		input      string
		env        map[string]string
		wantSource string
		wantTarget string
		wantErr    string
	}{
		{
			name:       "file only",
			input:      "source: {url: '" + fileSource + "'}\ntarget: {url: '" + fileTarget + "'}\n",
			wantSource: fileSource, wantTarget: fileTarget,
		},
		{
			name:       "overrides win over the file",
			input:      "source: {url: '" + fileSource + "'}\ntarget: {url: '" + fileTarget + "'}\n",
			env:        map[string]string{EnvSourceURL: envSource, EnvTargetURL: envTarget},
			wantSource: envSource, wantTarget: envTarget,
		},
		{
			name:       "empty override is ignored",
			input:      "source: {url: '" + fileSource + "'}\ntarget: {url: '" + fileTarget + "'}\n",
			env:        map[string]string{EnvSourceURL: ""},
			wantSource: fileSource, wantTarget: fileTarget,
		},
		{
			name:       "source override alone",
			input:      "target: {url: '" + fileTarget + "'}\n",
			env:        map[string]string{EnvSourceURL: envSource},
			wantSource: envSource, wantTarget: fileTarget,
		},
		{
			name:       "url_env",
			input:      "source: {url_env: CRM_URL}\ntarget: {url_env: BILLING_URL}\n",
			env:        map[string]string{"CRM_URL": envSource, "BILLING_URL": envTarget},
			wantSource: envSource, wantTarget: envTarget,
		},
		{
			name:       "url_env wins over the override",
			input:      "source: {url_env: CRM_URL}\ntarget: {url: '" + fileTarget + "'}\n",
			env:        map[string]string{"CRM_URL": fileSource, EnvSourceURL: envSource},
			wantSource: fileSource, wantTarget: fileTarget,
		},
		{
			name:       "target defaults to the overridden source",
			input:      "tables: [{source: crm.customers, target: billing.customers}]\n",
			env:        map[string]string{EnvSourceURL: envSource},
			wantSource: envSource, wantTarget: envSource,
		},
		{
			name:    "url_env variable not set",
			input:   "source: {url_env: CRM_URL}\ntarget: {url: '" + fileTarget + "'}\n",
			wantErr: "source.url_env (line 2): environment variable CRM_URL is not set",
		},
		{
			name:    "url_env variable not set with the override set",
			input:   "source: {url_env: CRM_URL}\ntarget: {url: '" + fileTarget + "'}\n",
			env:     map[string]string{EnvSourceURL: envSource},
			wantErr: "source.url_env (line 2): environment variable CRM_URL is not set",
		},
		{
			name:    "url and url_env both set",
			input:   "source: {url: '" + fileSource + "', url_env: CRM_URL}\ntarget: {url: '" + fileTarget + "'}\n",
			env:     map[string]string{"CRM_URL": envSource},
			wantErr: "set either source.url or source.url_env, not both",
		},
		{
			name:    "invalid url_env name",
			input:   "source: {url_env: 1CRM}\ntarget: {url: '" + fileTarget + "'}\n",
			wantErr: `source.url_env (line 2): invalid environment variable name "1CRM"`,
		},
		{
			name:    "no source url at all",
			input:   "target: {url: '" + fileTarget + "'}\n",
			wantErr: "source.url: missing: set source.url, source.url_env or the CHANGESYNC_SOURCE_URL",
		},
		{
			name:    "invalid override names the variable",
			input:   "target: {url: '" + fileTarget + "'}\n",
			env:     map[string]string{EnvSourceURL: "postgres://crm@db/crm?sslmode=sometimes"},
			wantErr: "source.url (from CHANGESYNC_SOURCE_URL): invalid connection string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := tt.input
			if !strings.Contains(input, "tables:") {
				input += "tables: [{source: crm.customers}]\n"
			}
			cfg, err := Parse([]byte("\n"+input), envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Source.URL != tt.wantSource {
				t.Errorf("source url = %q, want %q", cfg.Source.URL, tt.wantSource)
			}
			if cfg.Target.URL != tt.wantTarget {
				t.Errorf("target url = %q, want %q", cfg.Target.URL, tt.wantTarget)
			}
		})
	}
}

func TestLoadJWTSecretMustBeSet(t *testing.T) {
	input := minimal + "api: {auth: {jwt_secret_env: API_SECRET}}\n"
	_, err := Parse([]byte(input), noEnv)
	if err == nil || !strings.Contains(err.Error(), "environment variable API_SECRET is not set") {
		t.Errorf("error = %v, want the unset secret variable named", err)
	}

	if _, err := Parse([]byte(input), envOf(map[string]string{"API_SECRET": "s"})); err != nil {
		t.Errorf("Parse with the secret set: %v", err)
	}
}

// TestLoadRejects covers each check. Each input replaces the same sections of minimal.
func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{"unknown top-level key", "sourec: {}", `sourec: unknown key: use api, apply, audit, guard`},
		{"unknown nested key", "apply: {batch_size: 10}", `apply.batch_size: unknown key: use batch_max_events`},
		{"unknown table key", "tables: [{source: a.b, trunacte: hold}]", `tables[0].trunacte: unknown key`},
		{"key set twice", "log: {level: info, level: debug}", "log.level: set twice, on lines"},
		{"wrong kind", "tables: {source: a.b}", "tables: expected a list, found a mapping"},
		{"not a number", "apply: {batch_max_events: many}", `apply.batch_max_events: invalid value "many": use a whole number`},
		{"not a duration", "apply: {batch_max_wait: 10}", `apply.batch_max_wait: invalid value "10": use a duration`},
		{"not a bool", "llm: {enabled: maybe}", `llm.enabled: invalid value "maybe": use true or false`},
		{"list for a string", "log: {level: [info]}", "log.level: expected a single value, not a list or mapping, found a list"},
		{"bad table name", `tables: [{source: "a.b.c"}]`, `tables[0].source: invalid table name "a.b.c": it has 3 dot-separated parts`},
		{"bad target name", `tables: [{source: a.b, target: "x y"}]`, `tables[0].target: invalid table name "x y"`},
		{"no tables", "tables: []", "tables: missing: list at least one table"},
		{"table without source", "tables: [{target: a.b}]", "tables[0].source: missing"},
		{"duplicate source", "tables: [{source: crm.a}, {source: CRM.A, target: x.a}]", `tables[1].source: crm.a is already listed as tables[0]`},
		{"duplicate after default schema", "tables: [{source: a}, {source: public.a}]", `tables[1].source: public.a is already listed as tables[0]`},
		{"renamed and excluded", "tables: [{source: a, columns: {x: y}, exclude: [x]}]", `tables[0].columns.x: column "x" is both renamed and excluded`},
		{"key excluded", "tables: [{source: a, key: [id], exclude: [id]}]", `tables[0].key[0]: key column "id" is also in exclude`},
		{"key twice", "tables: [{source: a, key: [id, id]}]", `tables[0].key[1]: column "id" is listed twice`},
		{"exclude twice", "tables: [{source: a, exclude: [x, x]}]", `tables[0].exclude[1]: column "x" is listed twice`},
		{"two renames to one column", "tables: [{source: a, columns: {x: z, y: z}}]", `tables[0].columns.y: source columns "x" and "y" both map to target column "z"`},
		{"rename onto a key column", "tables: [{source: a, key: [z], columns: {x: z}}]", `tables[0].columns.x: source columns "z" and "x" both map to target column "z"`},
		{"empty column name", `tables: [{source: a, key: [""]}]`, "tables[0].key[0]: empty column name"},
		{"long column name", "tables: [{source: a, exclude: [" + strings.Repeat("c", 64) + "]}]", "is 64 bytes long: use at most 63 bytes"},
		{"empty transform", `tables: [{source: a, transform: {zip: " "}}]`, "tables[0].transform.zip: missing expression"},
		{"transform of excluded column", `tables: [{source: a, exclude: [zip], transform: {zip: "new.zip"}}]`, `tables[0].transform.zip: column "zip" is excluded`},
		{"transform of key column", `tables: [{source: a, key: [id], transform: {id: "new.id + 1"}}]`, `tables[0].transform.id: column "id" is in tables[].key`},
		{"bad truncate", "tables: [{source: a}, {source: b, truncate: drop}]", `tables[1].truncate: invalid value "drop": use hold, apply or ignore`},
		{"target is the source", "target: {url: 'postgres://crm@db:5432/crm'}\ntables: [{source: crm.customers}]", "tables[0].target: the target is the source table crm.customers itself"},
		{"bad slot", "source: {url: 'postgres://crm@db/crm', slot: Change-Sync}", `source.slot: invalid slot name "Change-Sync"`},
		{"long slot", "source: {url: 'postgres://crm@db/crm', slot: " + strings.Repeat("s", 64) + "}", "source.slot: invalid slot name"},
		{"long publication", "source: {url: 'postgres://crm@db/crm', publication: " + strings.Repeat("p", 64) + "}", "source.publication: name"},
		{"bad snapshot", "source: {url: 'postgres://crm@db/crm', snapshot: always}", `source.snapshot: invalid value "always": use initial or never`},
		{"status interval too long", "source: {url: 'postgres://crm@db/crm', status_interval: 30s}", "source.status_interval: invalid duration 30s: use more than 0 and at most 10s"},
		{"status interval zero", "source: {url: 'postgres://crm@db/crm', status_interval: 0s}", "source.status_interval: invalid duration 0s"},
		{"missing spill dir", "source: {url: 'postgres://crm@db/crm', spill_dir: /nonexistent/spill}", `source.spill_dir: "/nonexistent/spill" is not a directory: create it`},
		{"number as heartbeat", "source: {url: 'postgres://crm@db/crm', heartbeat: 30}", `source.heartbeat: invalid value "30": use a duration such as 10s`},
		{"negative heartbeat", "source: {url: 'postgres://crm@db/crm', heartbeat: -1s}", "source.heartbeat: invalid duration -1s: use 0 or more"},
		{"bad source url", "source: {url: 'postgres://crm@db:port/crm'}", `source.url: invalid connection string`},
		{"bad target url", "target: {url: 'host=db sslmode=sometimes'}", `target.url: invalid connection string host=db sslmode=sometimes`},
		{"long schema", "target: {url: 'postgres://b@db/b', schema: " + strings.Repeat("m", 64) + "}", "target.schema: name"},
		{"bad pipeline", "pipeline: 'my pipeline'", `pipeline: invalid name "my pipeline"`},
		{"zero batch", "apply: {batch_max_events: 0}", "apply.batch_max_events: invalid value 0: use a positive number"},
		{"negative batch", "apply: {batch_max_events: -5}", "apply.batch_max_events: invalid value -5"},
		{"negative wait", "apply: {batch_max_wait: -1ms}", "apply.batch_max_wait: invalid duration -1ms"},
		{"bad on_existing_row", "apply: {on_existing_row: overwrite}", `apply.on_existing_row: invalid value "overwrite": use update or fail`},
		{"bad on_missing_row", "apply: {on_missing_row: create}", `apply.on_missing_row: invalid value "create": use insert, skip or fail`},
		{"rule without name", "rules: [{when: 'true', action: hold}]", "rules[0].name: missing"},
		{"rule without when", "rules: [{name: r, action: hold}]", "rules[0].when: missing"},
		{"duplicate rule", "rules: [{name: r, when: 'true', action: hold}, {name: r, when: 'false', action: skip}]", `rules[1].name: "r" is already the name of rules[0]`},
		{"bad rule action", "rules: [{name: r, when: 'true', action: drop}]", `rules[0].action: invalid value "drop": use approve, skip, reject or hold`},
		{"missing rule action", "rules: [{name: r, when: 'true'}]", `rules[0].action: invalid value ""`},
		{"rule on unknown table", "rules: [{name: r, table: crm.orders, when: 'true', action: hold}]", "rules[0].table: crm.orders is not one of the tables"},
		{"rule on bad table", "rules: [{name: r, table: 'a.b.c', when: 'true', action: hold}]", `rules[0].table: invalid table name "a.b.c"`},
		{"negative guard", "guard: {max_rows_per_tx: -1}", "guard.max_rows_per_tx: invalid value -1"},
		{"negative delete guard", "guard: {max_deletes_per_tx: -1}", "guard.max_deletes_per_tx: invalid value -1"},
		{"bad guard action", "guard: {action: approve}", `guard.action: invalid value "approve": use hold, reject or skip`},
		{"llm without base_url", "llm: {enabled: true, model: m}", "llm.base_url: missing"},
		{"llm without model", "llm: {enabled: true, base_url: 'http://127.0.0.1:1/v1'}", "llm.model: missing"},
		{"llm bad base_url", "llm: {base_url: 'ftp://host/v1'}", `llm.base_url: invalid URL "ftp://host/v1"`},
		{"llm zero timeout", "llm: {timeout: 0s}", "llm.timeout: invalid duration 0s"},
		{"llm bad on_error", "llm: {on_error: retry}", `llm.on_error: invalid value "retry"`},
		{"llm column of unknown table", "llm: {columns: [crm.orders.notes]}", "llm.columns[0]: table crm.orders is not one of the tables"},
		{"llm column without table", "llm: {columns: [notes]}", `llm.columns[0]: invalid column "notes"`},
		{"api bad listen", "api: {listen: '8080'}", `api.listen: invalid address "8080"`},
		{"api bad port", "api: {listen: '127.0.0.1:99999'}", `api.listen: invalid port "99999"`},
		{"api open without auth", "api: {listen: '0.0.0.0:8080'}", "api.listen: 0.0.0.0:8080 is not a loopback address and api.auth is not configured"},
		{"api all interfaces without auth", "api: {listen: ':8080'}", "api.listen: :8080 is not a loopback address"},
		{"api two auth methods", "api: {auth: {jwks_url: 'https://idp/jwks', jwt_secret_env: S}}", "api.auth: both jwt_secret_env and jwks_url are set"},
		{"api bad jwks url", "api: {auth: {jwks_url: 'idp/jwks'}}", `api.auth.jwks_url: invalid URL "idp/jwks"`},
		{"negative audit limit", "audit: {max_value_bytes: -1}", "audit.max_value_bytes: invalid value -1: use 0 (store every value whole) or a number of bytes of at least 1024, such as 1048576 (1 MiB)"},
		{"audit limit below minimum", "audit: {max_value_bytes: 1}", "audit.max_value_bytes: invalid value 1: use 0"},
		{"audit limit not a number", "audit: {max_value_bytes: 1MiB}", `audit.max_value_bytes: invalid value "1MiB": use a whole number`},
		{"unknown audit key", "audit: {max_bytes: 10}", "audit.max_bytes: unknown key: use max_value_bytes"},
		{"bad log level", "log: {level: verbose}", `log.level: invalid value "verbose": use debug, info, warn or error`},
		{"bad log format", "log: {format: xml}", `log.format: invalid value "xml": use json or text`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := configWith(tt.input)
			env := envOf(map[string]string{"S": "secret"})
			_, err := Parse([]byte(input), env)
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", input)
			}
			if got := lineNumbers.ReplaceAllString(err.Error(), ""); !strings.Contains(got, tt.wantErr) {
				t.Errorf("error =\n%v\nwant it to contain %q", err, tt.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v holds no *FieldError", err)
			}
		})
	}
}

var lineNumbers = regexp.MustCompile(` \(line \d+\)`)

// configWith returns minimal with its top-level sections replaced by those of sections.
func configWith(sections string) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(minimal), "\n") {
		key, _, _ := strings.Cut(line, ":")
		if !strings.HasPrefix(sections, key+":") && !strings.Contains(sections, "\n"+key+":") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n") + "\n" + sections + "\n"
}

func TestLoadNamesLines(t *testing.T) {
	input := `source: {url: "postgres://crm@db/crm"}
target: {url: "postgres://billing@db/billing"}
tables:
  - source: crm.customers
  - source: crm.orders
    truncate: drop
    trunacte: hold
log:
  level: loud
`
	_, err := Parse([]byte(input), noEnv)
	if err == nil {
		t.Fatal("Parse accepted a bad configuration")
	}
	for _, want := range []string{
		"tables[1].trunacte (line 7): unknown key",
		`tables[1].truncate (line 6): invalid value "drop"`,
		`log.level (line 9): invalid value "loud"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error =\n%v\nwant it to contain %q", err, want)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	input := `
source: {url: "postgres://crm@db/crm", snapshot: sometimes}
target: {url: "postgres://billing@db/billing"}
tables:
  - {source: crm.a, truncate: drop}
  - {source: crm.a}
log: {level: loud, colour: true}
`
	_, err := Parse([]byte(input), noEnv)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v is not a joined list", err)
	}

	var fields []string
	for _, e := range joined.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"log.colour", "source.snapshot", "tables[0].truncate", "tables[1].source", "log.level"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("problems on %v, want %v", fields, want)
	}
}

func TestLoadShapeErrorsComeFirst(t *testing.T) {
	// A value of the wrong kind stops before validation, whose messages about the
	// partly decoded configuration would mislead.
	input := minimal + "apply: {batch_max_events: lots}\nlog: {level: loud, colour: true}\n"
	_, err := Parse([]byte(input), noEnv)
	if err == nil {
		t.Fatal("Parse accepted a bad number")
	}
	if !strings.Contains(err.Error(), "apply.batch_max_events") {
		t.Errorf("error %v does not name apply.batch_max_events", err)
	}
	if !strings.Contains(err.Error(), "log.colour") {
		t.Errorf("error %v does not name the unknown key log.colour", err)
	}
	if strings.Contains(err.Error(), "log.level") {
		t.Errorf("error %v reports validation problems before the shape is right", err)
	}
}

func TestLoadYAMLSyntaxError(t *testing.T) {
	_, err := Parse([]byte("source: {url: [}"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "parse YAML") {
		t.Errorf("error = %v, want a YAML parse error", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), noEnv)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want one wrapping os.ErrNotExist", err)
	}

	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("tables: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(path, noEnv)
	if err == nil || !strings.HasPrefix(err.Error(), "configuration "+path+": ") {
		t.Errorf("error = %v, want it to start with the file name", err)
	}
}

func TestLoadAliasesAndMergeKeys(t *testing.T) {
	input := `
source: {url: "postgres://crm@db/crm"}
target: {url: "postgres://billing@db/billing"}
common: &common {truncate: ignore, exclude: [password_hash]}
tables:
  - {<<: *common, source: crm.customers}
  - {<<: *common, source: crm.orders}
`
	_, err := Parse([]byte(input), noEnv)
	if err == nil || !strings.Contains(err.Error(), "common (line 4): unknown key") {
		t.Fatalf("error = %v, want the unknown key common reported", err)
	}

	input = strings.Replace(input, "common: &common", "x-common: &common", 1)
	_, err = Parse([]byte(input), noEnv)
	if err == nil || !strings.Contains(err.Error(), "x-common") {
		t.Fatalf("error = %v, want the unknown key x-common reported", err)
	}
}

func TestLoadMergeKeysInTables(t *testing.T) {
	input := `
source: {url: "postgres://crm@db/crm"}
target: {url: "postgres://billing@db/billing"}
tables:
  - &customers {source: crm.customers, truncate: ignore, exclude: [password_hash]}
  - {<<: *customers, source: crm.orders}
`
	cfg, err := Parse([]byte(input), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	orders := cfg.Tables[1]
	if orders.Source.Name != "orders" || orders.Truncate != "ignore" || len(orders.Exclude) != 1 {
		t.Errorf("tables[1] = %+v, want orders with the merged settings", orders)
	}
}

func TestLoadAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("rules: *a9\n")

	start := time.Now()
	_, err := Parse([]byte(b.String()), noEnv)
	if err == nil {
		t.Fatal("Parse accepted an alias bomb")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Parse took %s on an alias bomb", time.Since(start))
	}
}

func TestTableYAMLKeysMatch(t *testing.T) {
	table := sortedKeys(yamlFields(reflect.TypeFor[Table]()))
	raw := sortedKeys(yamlFields(reflect.TypeFor[tableYAML]()))
	if !reflect.DeepEqual(table, raw) {
		t.Errorf("Table keys %v differ from tableYAML keys %v", table, raw)
	}
}

func TestParseColumnRef(t *testing.T) {
	tests := []struct {
		input      string
		wantTable  change.TableName
		wantColumn string
		wantErr    bool
	}{
		{"crm.customers.notes", change.TableName{Schema: "crm", Name: "customers"}, "notes", false},
		{"customers.Notes", change.TableName{Schema: "public", Name: "customers"}, "notes", false},
		{`crm."Customers"."Notes"`, change.TableName{Schema: "crm", Name: "Customers"}, "Notes", false},
		{"notes", change.TableName{}, "", true},
		{"a.b.c.d", change.TableName{}, "", true},
	}
	for _, tt := range tests {
		table, column, err := ParseColumnRef(tt.input)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseColumnRef(%q) error = %v, want error %v", tt.input, err, tt.wantErr)
			continue
		}
		if table != tt.wantTable || column != tt.wantColumn {
			t.Errorf("ParseColumnRef(%q) = %v, %q, want %v, %q", tt.input, table, column,
				tt.wantTable, tt.wantColumn)
		}
	}
}

func TestValidateBuiltConfig(t *testing.T) {
	cfg, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of a loaded configuration: %v", err)
	}

	cfg.Tables[0].Truncate = "drop"
	err = cfg.Validate()
	if err == nil || err.Error() != `tables[0].truncate: invalid value "drop": use hold, apply or ignore` {
		t.Errorf("Validate = %v, want the truncate problem alone", err)
	}
}
