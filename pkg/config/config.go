// Package config loads the changesync YAML configuration, applies the environment
// overrides and defaults, and validates it. Every problem is reported at load with the
// field path, the value and what to do, all of them at once.
package config

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/datasense/changesync/pkg/change"
)

// Environment variables that override the connection URLs of the file.
const (
	EnvSourceURL = "CHANGESYNC_SOURCE_URL"
	EnvTargetURL = "CHANGESYNC_TARGET_URL"
)

// Config is one changesync pipeline: where it reads, where it writes, which tables, and
// how changes are validated, applied, served and logged.
type Config struct {
	// Pipeline names this pipeline in checkpoints, logs and metrics; default: the slot name.
	Pipeline string  `yaml:"pipeline"`
	Source   Source  `yaml:"source"`
	Target   Target  `yaml:"target"`
	Tables   []Table `yaml:"tables"`
	Apply    Apply   `yaml:"apply"`
	Rules    []Rule  `yaml:"rules"`
	Guard    Guard   `yaml:"guard"`
	LLM      LLM     `yaml:"llm"`
	API      API     `yaml:"api"`
	Audit    Audit   `yaml:"audit"`
	// Retention deletes old audit and outbox rows; off by default.
	Retention Retention `yaml:"retention"`
	Notify    yaml.Node `yaml:"notify,omitempty"` // decoded by the notify package; may contain secrets
	Log       Log       `yaml:"log"`

	// RuleCostLimit caps the CEL cost of evaluating one rule on one change; a rule that
	// exceeds it holds the change. Default 100000.
	RuleCostLimit int `yaml:"rule_cost_limit"`
}

// Source is the PostgreSQL database that changes are read from.
type Source struct {
	// URL is the connection string. URLEnv names a variable to read it from instead;
	// without URLEnv, CHANGESYNC_SOURCE_URL overrides URL.
	URL    string `yaml:"url"`
	URLEnv string `yaml:"url_env"`
	// Publication and Slot name the publication and the logical replication slot that
	// changesync creates when they are missing. Slot defaults to "changesync" and
	// Publication to the slot name.
	Publication string `yaml:"publication"`
	Slot        string `yaml:"slot"`
	// Snapshot is "initial" (copy the tables when the slot is created) or "never".
	Snapshot string `yaml:"snapshot"`
	// StatusInterval is the longest time between two standby status updates; default 10s.
	StatusInterval time.Duration `yaml:"status_interval"`
	// Heartbeat is how often a logical decoding message is written to an idle source so
	// that the slot advances; default 1m, 0 turns it off.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Streaming lets a source of PostgreSQL 14 or later send a transaction that outgrows
	// its logical_decoding_work_mem while the transaction is in progress. changesync keeps
	// it in a spill file until it commits. Default true.
	Streaming bool `yaml:"streaming"`
	// SpillDir is the directory of those spill files; default: the system's temporary
	// directory. The files are unlinked at creation, so nothing is left after a crash.
	SpillDir string `yaml:"spill_dir"`

	urlFrom string // origin of URL (file, override or url_env), named in messages
}

// Target is the PostgreSQL database that changes are written to.
type Target struct {
	// URL is the connection string; default: the source URL. URLEnv names a variable to
	// read it from instead; without URLEnv, CHANGESYNC_TARGET_URL overrides URL.
	URL    string `yaml:"url"`
	URLEnv string `yaml:"url_env"`
	// Schema is the schema of the metadata tables; default "changesync".
	Schema string `yaml:"schema"`

	urlFrom string // origin of URL (file, override or url_env), named in messages
}

// Table maps one source table to a target table. In YAML the table names are strings
// such as crm.customers or "CRM"."Customers".
type Table struct {
	Source change.TableName `yaml:"source"`
	Target change.TableName `yaml:"target"` // default: the same name as Source
	// Key lists the source columns that identify a row. Empty means the source's replica
	// identity, which is the primary key unless the table sets another one.
	Key []string `yaml:"key"`
	// Columns renames source columns to target columns; other columns keep their names.
	Columns map[string]string `yaml:"columns"`
	// Exclude lists source columns that are never written to the target.
	Exclude []string `yaml:"exclude"`
	// Transform maps a source column to a CEL expression that computes its target value.
	// The expressions are compiled by the validate package.
	Transform map[string]string `yaml:"transform"`
	// Truncate is the action on a source TRUNCATE: "hold" (default), "apply" or "ignore".
	Truncate string `yaml:"truncate"`
	// ActorColumn names a source column whose new value is recorded as the actor.
	ActorColumn string `yaml:"actor_column"`
}

// Apply tunes how approved changes are written to the target.
type Apply struct {
	// BatchMaxEvents is the maximum number of events in one target transaction; default 5000.
	BatchMaxEvents int `yaml:"batch_max_events"`
	// BatchMaxWait is how long a batch waits for more events before it commits; default
	// 200ms, 0 commits without waiting.
	BatchMaxWait time.Duration `yaml:"batch_max_wait"`
	// OnExistingRow is the action of an INSERT whose key the target already has: "update"
	// (default, write the delta) or "fail".
	OnExistingRow string `yaml:"on_existing_row"`
	// OnMissingRow is the action of an UPDATE whose row the target lacks: "insert"
	// (default, when the new tuple is complete), "skip" or "fail".
	OnMissingRow string `yaml:"on_missing_row"`
	// OnMissingColumn is the action of a change that carries a value of a source column
	// the target table lacks, such as a column added on the source while streaming.
	// "hold" (default) waits for a person to decide once the target has the column, and
	// "ignore" writes the other columns.
	OnMissingColumn string `yaml:"on_missing_column"`
}

// Rule is a validation rule: when the CEL expression When is true for an event, Action
// decides it.
type Rule struct {
	Name string `yaml:"name"`
	// Table limits the rule to one source table; empty means every table.
	Table  string `yaml:"table"`
	When   string `yaml:"when"`
	Action string `yaml:"action"` // approve, skip, reject or hold
	// Reason is recorded with the decision when the rule matches, such as "zip code must
	// have five digits"; default: the rule's condition.
	Reason string `yaml:"reason"`
}

// Guard is the bulk-change guard, which decides a whole transaction that touches more
// rows of one table than a limit.
type Guard struct {
	MaxRowsPerTx    int    `yaml:"max_rows_per_tx"`    // 0 turns the limit off
	MaxDeletesPerTx int    `yaml:"max_deletes_per_tx"` // 0 turns the limit off
	Action          string `yaml:"action"`             // hold (default), reject or skip
	Burst           Burst  `yaml:"burst"`
}

// Burst is the burst detector, which raises an alert, without holding any change, when a
// table receives far more changes in one minute than its average minute of the window.
// Minutes are counted by commit time.
type Burst struct {
	// Factor is how many times the average a minute must exceed to alert; default 10,
	// 0 turns burst detection off.
	Factor int `yaml:"factor"`
	// Window is the span of recent minutes averaged; default 1h, at least 2m.
	Window time.Duration `yaml:"window"`
	// MinChanges is the number of changes a minute must exceed before it alerts. It keeps
	// a quiet table that goes from 1 to 20 changes a minute silent. Default 1000.
	MinChanges int `yaml:"min_changes"`
}

// LLM is the reviewer that sends changed free-text columns to an OpenAI-compatible
// endpoint for a verdict.
type LLM struct {
	Enabled bool   `yaml:"enabled"`
	BaseURL string `yaml:"base_url"` // including /v1
	Model   string `yaml:"model"`
	// APIKeyEnv names the environment variable that contains the API key; default
	// OPENAI_API_KEY.
	APIKeyEnv string `yaml:"api_key_env"`
	// Columns lists the reviewed columns as schema.table.column.
	Columns []string      `yaml:"columns"`
	Timeout time.Duration `yaml:"timeout"`  // per request; default 10s
	OnError string        `yaml:"on_error"` // hold (default), approve, skip or reject
	// MaxConcurrency is the maximum number of requests in flight at once; default 4.
	MaxConcurrency int `yaml:"max_concurrency"`
	// CacheSize is the number of verdicts kept, keyed by column, operation and value
	// digest; default 10000, 0 turns the cache off.
	CacheSize int `yaml:"cache_size"`
	// Instructions tell the model what to reject or hold, such as "reject notes that
	// contain a payment card number". Empty means the validate package's default policy.
	Instructions string `yaml:"instructions"`
}

// Audit shapes the values that change_events records in old_data and new_data.
type Audit struct {
	// MaxValueBytes is the longest text form of a value, in bytes, that old_data and
	// new_data store whole. A longer value is stored as its digest,
	// {"sha256": "<hex>", "bytes": <n>}. Held and blocked changes keep every value whole
	// until a release decides them, because the release applies them from change_events.
	// sync_log stores whole values either way, for undo. Default 1048576 (1 MiB), and 0
	// stores every value whole.
	MaxValueBytes int `yaml:"max_value_bytes"`
}

// Retention is the housekeeping of the metadata tables, run by the active process.
type Retention struct {
	// Audit is how long change_events rows are kept, with their sync_log and
	// undo_requests rows; 0 keeps them forever. Held and blocked changes are kept.
	Audit time.Duration `yaml:"audit"`
	// UndoHorizon is how long a synced change stays undoable, so it is kept at least this
	// long even when Audit is shorter; default 0.
	UndoHorizon time.Duration `yaml:"undo_horizon"`
	// Outbox is how long delivered or failed notifications are kept; 0 keeps them.
	Outbox time.Duration `yaml:"outbox"`
	// Interval is the time between two runs; default 1h.
	Interval time.Duration `yaml:"interval"`
}

// API is the HTTP API.
type API struct {
	Listen string  `yaml:"listen"` // host:port; default 127.0.0.1:8080
	Auth   APIAuth `yaml:"auth"`
}

// APIAuth configures JWT authentication: an HS256 secret from the environment or a JWKS
// URL. Without either, the API accepts every request and must listen on loopback.
type APIAuth struct {
	JWTSecretEnv string `yaml:"jwt_secret_env"`
	JWKSURL      string `yaml:"jwks_url"`
	Issuer       string `yaml:"issuer"`
	Audience     string `yaml:"audience"`
	RoleClaim    string `yaml:"role_claim"`
}

// Enabled reports whether authentication is configured.
func (a APIAuth) Enabled() bool { return a.JWTSecretEnv != "" || a.JWKSURL != "" }

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn or error
	Format string `yaml:"format"` // json (default) or text
}

// Defaults of the fields that are not set in the file.
const (
	DefaultName           = "changesync"
	DefaultStatusInterval = 10 * time.Second
	DefaultHeartbeat      = time.Minute
	DefaultBatchMaxEvents = 5000
	DefaultBatchMaxWait   = 200 * time.Millisecond
	DefaultAPIKeyEnv      = "OPENAI_API_KEY" //nolint:gosec // G101: the name of a variable, not a key
	DefaultLLMTimeout     = 10 * time.Second
	DefaultRuleCostLimit  = 100_000
	DefaultBurstFactor    = 10
	DefaultBurstWindow    = time.Hour
	DefaultBurstMin       = 1000
	DefaultLLMConcurrency = 4
	DefaultLLMCacheSize   = 10_000
	DefaultListen         = "127.0.0.1:8080"

	DefaultAuditMaxValueBytes = 1 << 20
	// MinAuditMaxValueBytes is the smallest limit other than 0. A digest takes about 100
	// bytes, so a lower limit saves little, and the minimum catches a limit written in
	// the wrong unit, such as 1 meant as 1 MiB.
	MinAuditMaxValueBytes = 1024
)

// defaults returns a configuration with the defaults of the fields whose zero value is a
// valid setting of its own (a heartbeat of 0 turns it off), so that decoding the file
// over it keeps "not set" apart from "set to 0".
func defaults() Config {
	return Config{
		Source: Source{
			Heartbeat: DefaultHeartbeat, StatusInterval: DefaultStatusInterval, Streaming: true,
		},
		Apply: Apply{BatchMaxEvents: DefaultBatchMaxEvents, BatchMaxWait: DefaultBatchMaxWait},
		LLM: LLM{
			Timeout: DefaultLLMTimeout, MaxConcurrency: DefaultLLMConcurrency,
			CacheSize: DefaultLLMCacheSize,
		},
		RuleCostLimit: DefaultRuleCostLimit,
		Audit:         Audit{MaxValueBytes: DefaultAuditMaxValueBytes},
		Guard: Guard{Burst: Burst{
			Factor: DefaultBurstFactor, Window: DefaultBurstWindow, MinChanges: DefaultBurstMin,
		}},
	}
}

// fillDefaults sets the defaults of the fields left empty after decoding and after the
// URLs are resolved.
func (c *Config) fillDefaults() {
	setDefault(&c.Source.Slot, DefaultName)
	// A publication of its own per slot, so that teardown of one pipeline cannot drop
	// the publication another pipeline streams from.
	setDefault(&c.Source.Publication, c.Source.Slot)
	setDefault(&c.Source.Snapshot, "initial")
	setDefault(&c.Pipeline, c.Source.Slot)
	if c.Target.URL == "" && c.Target.URLEnv == "" {
		c.Target.URL = c.Source.URL
		c.Target.urlFrom = "target.url (default: the source URL)"
	}
	setDefault(&c.Target.Schema, DefaultName)

	for i := range c.Tables {
		t := &c.Tables[i]
		if t.Target == (change.TableName{}) {
			t.Target = t.Source
		}
		setDefault(&t.Truncate, "hold")
	}

	setDefault(&c.Apply.OnExistingRow, "update")
	setDefault(&c.Apply.OnMissingRow, "insert")
	setDefault(&c.Apply.OnMissingColumn, "hold")
	if c.Retention.Interval == 0 {
		c.Retention.Interval = time.Hour
	}
	setDefault(&c.Guard.Action, "hold")
	setDefault(&c.LLM.APIKeyEnv, DefaultAPIKeyEnv)
	setDefault(&c.LLM.OnError, "hold")
	setDefault(&c.API.Listen, DefaultListen)
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "json")
}

func setDefault(field *string, value string) {
	if *field == "" {
		*field = value
	}
}
