package notify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/datasense/changesync/pkg/config"
)

func envOf(vars map[string]string) config.LookupEnv {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var testEnv = envOf(map[string]string{
	"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
	"SLACK_BOT_TOKEN":   "xoxb-1-secret",
	"SMTP_PASSWORD":     "mail-secret",
	"HOOK_URL":          "https://billing.example.com/hooks/changesync",
	"HOOK_SECRET":       testSecret,
	"SHORT_SECRET":      "too short",
})

func parseYAML(t *testing.T, text string, env config.LookupEnv) (Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("parse test YAML: %v", err)
	}
	node := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		node = doc.Content[0]
	}
	return ParseConfig(node, env)
}

const fullConfig = `
poll_interval: 2s
retry: {max_attempts: 4, initial_interval: 500ms, max_interval: 1m, multiplier: 3, jitter: 0}
slack:
  webhook_url_env: SLACK_WEBHOOK_URL
  events: [hold, reject, bulk_guard, undo]
  tables: [crm.*]
email:
  - name: oncall-mail
    host: smtp.example.com
    username: changesync
    password_env: SMTP_PASSWORD
    from: changesync@example.com
    to: [oncall@example.com]
    events: ["*"]
    digest: {interval: 10m}
  - name: audit-mail
    host: smtp.example.com
    tls: tls
    from: changesync@example.com
    to: [audit@example.com]
    events: [undo]
webhooks:
  - url_env: HOOK_URL
    secret_env: HOOK_SECRET
    events: [sync]
`

func TestParseConfigFull(t *testing.T) {
	cfg, err := parseYAML(t, fullConfig, testEnv)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"poll_interval", cfg.PollInterval, 2 * time.Second},
		{"batch_size default", cfg.BatchSize, DefaultBatchSize},
		{"retry.max_attempts", cfg.Retry.MaxAttempts, 4},
		{"retry.jitter set to 0", cfg.Retry.Jitter, 0.0},
		{"slack is one mapping", len(cfg.Slack), 1},
		{"slack name default", cfg.Slack[0].Name, "slack"},
		{"slack webhook URL", cfg.Slack[0].WebhookURL.Value(), "https://hooks.slack.com/services/T000/B000/XXXXSECRET"},
		{"slack timeout default", cfg.Slack[0].Timeout, DefaultTimeout},
		{"email count", len(cfg.Email), 2},
		{"email port default for starttls", cfg.Email[0].Port, 587},
		{"email port default for tls", cfg.Email[1].Port, 465},
		{"email tls default", cfg.Email[0].TLS, TLSStartTLS},
		{"email password", cfg.Email[0].Password.Value(), "mail-secret"},
		{"email timeout default", cfg.Email[0].Timeout, DefaultEmailTimeout},
		{"digest sample default", cfg.Email[0].Digest.Sample, DefaultDigestSample},
		{"server name default", cfg.Email[0].ServerName, "smtp.example.com"},
		{"webhook name default", cfg.Webhooks[0].Name, "webhook"},
		{"webhook URL", cfg.Webhooks[0].ResolvedURL.Value(), "https://billing.example.com/hooks/changesync"},
		{"webhook secret", cfg.Webhooks[0].Secret.Value(), testSecret},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseConfigEmpty(t *testing.T) {
	cfg, err := ParseConfig(&yaml.Node{}, testEnv)
	if err != nil {
		t.Fatalf("ParseConfig of an empty node: %v", err)
	}
	if cfg.PollInterval != DefaultPollInterval || cfg.Retry.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("defaults not filled in: %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		field string
		want  string
	}{
		{
			name:  "unknown key",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: HOOK_SECRET, events: [sync], secret: abc}]",
			field: "notify.webhooks[0].secret", want: "unknown field: use one of",
		},
		{
			name:  "unknown event type",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: HOOK_SECRET, events: [synced]}]",
			field: "notify.webhooks[0].events[0]", want: `unknown event type "synced": use sync, hold`,
		},
		{
			name:  "no events",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: HOOK_SECRET}]",
			field: "notify.webhooks[0].events", want: "missing: list the event types",
		},
		{
			name:  "secret variable not set",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: NOT_SET, events: [sync]}]",
			field: "notify.webhooks[0].secret_env", want: "environment variable NOT_SET is not set",
		},
		{
			name:  "short secret",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: SHORT_SECRET, events: [sync]}]",
			field: "notify.webhooks[0].secret_env", want: "the key is 9 bytes: use at least 16",
		},
		{
			name:  "plain http to a remote host",
			yaml:  "webhooks: [{url: 'http://x.example.com/h', secret_env: HOOK_SECRET, events: [sync]}]",
			field: "notify.webhooks[0].url", want: "plain http to a host that is not loopback: use https",
		},
		{
			name:  "url and url_env",
			yaml:  "webhooks: [{url: https://x.example.com, url_env: HOOK_URL, secret_env: HOOK_SECRET, events: [sync]}]",
			field: "notify.webhooks[0].url_env", want: "both url and url_env are set",
		},
		{
			name:  "slack with both ways to post",
			yaml:  "slack: {webhook_url_env: SLACK_WEBHOOK_URL, token_env: SLACK_BOT_TOKEN, events: [hold]}",
			field: "notify.slack", want: "both webhook_url_env and token_env are set",
		},
		{
			name:  "slack token without channel",
			yaml:  "slack: {token_env: SLACK_BOT_TOKEN, events: [hold]}",
			field: "notify.slack.channel", want: "missing: a bot token posts to a channel",
		},
		{
			name:  "two slacks without names",
			yaml:  "slack: [{webhook_url_env: SLACK_WEBHOOK_URL, events: [hold]}, {webhook_url_env: SLACK_WEBHOOK_URL, events: [sync]}]",
			field: "notify.slack[0].name", want: "missing: name each destination",
		},
		{
			name: "duplicate names",
			yaml: "slack: {name: ops, webhook_url_env: SLACK_WEBHOOK_URL, events: [hold]}\n" +
				"webhooks: [{name: ops, url: https://x.example.com, secret_env: HOOK_SECRET, events: [sync]}]",
			field: "notify.webhooks[0].name", want: `duplicate name "ops", also used by notify.slack`,
		},
		{
			name:  "invalid tls mode",
			yaml:  "email: {host: smtp.example.com, tls: ssl, from: a@example.com, to: [b@example.com], events: [undo]}",
			field: "notify.email.tls", want: `invalid value "ssl": use starttls, tls or none`,
		},
		{
			name: "password over plain SMTP",
			yaml: "email: {host: smtp.example.com, tls: none, username: u, password_env: SMTP_PASSWORD, " +
				"from: a@example.com, to: [b@example.com], events: [undo]}",
			field: "notify.email.tls", want: "would send the password unencrypted",
		},
		{
			name:  "invalid recipient",
			yaml:  "email: {host: smtp.example.com, from: a@example.com, to: [not-an-address], events: [undo]}",
			field: "notify.email.to[0]", want: `invalid address "not-an-address"`,
		},
		{
			name:  "digest interval too short",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: HOOK_SECRET, events: [sync], digest: {interval: 10ms}}]",
			field: "notify.webhooks[0].digest.interval", want: "invalid value 10ms: use 1s or more",
		},
		{
			name:  "bad duration",
			yaml:  "poll_interval: often",
			field: "notify", want: "durations are written like",
		},
		{
			name:  "jitter out of range",
			yaml:  "retry: {jitter: 1.5}",
			field: "notify.retry.jitter", want: "invalid value 1.5",
		},
		{
			name:  "bad table pattern",
			yaml:  "webhooks: [{url: https://x.example.com, secret_env: HOOK_SECRET, events: [sync], tables: ['crm.[']}]",
			field: "notify.webhooks[0].tables[0]", want: `invalid table pattern "crm.["`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseYAML(t, tt.yaml, testEnv)
			if err == nil {
				t.Fatal("ParseConfig succeeded, want an error")
			}
			if !hasProblem(err, tt.field, tt.want) {
				t.Errorf("error does not report %s: %q; got:\n%v", tt.field, tt.want, err)
			}
		})
	}
}

// hasProblem reports whether err joins a *config.FieldError for field whose problem
// contains want.
func hasProblem(err error, field, want string) bool {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return false
	}
	for _, e := range joined.Unwrap() {
		var fe *config.FieldError
		if errors.As(e, &fe) && fe.Field == field && strings.Contains(fe.Problem, want) {
			return true
		}
	}
	return false
}

func TestParseConfigErrorHasLine(t *testing.T) {
	_, err := parseYAML(t, "webhooks:\n  - url: https://x.example.com\n    secret_env: HOOK_SECRET\n    events: [nope]\n", testEnv)
	if err == nil || !strings.Contains(err.Error(), "notify.webhooks[0].events[0] (line 4)") {
		t.Errorf("error = %v, want the field with line 4", err)
	}
}

func TestParseConfigErrorsHideSecrets(t *testing.T) {
	env := envOf(map[string]string{"SLACK_WEBHOOK_URL": "ftp://hooks.example.com/SECRETPATH"})
	_, err := parseYAML(t, "slack: {webhook_url_env: SLACK_WEBHOOK_URL, events: [hold]}", env)
	if err == nil {
		t.Fatal("ParseConfig accepted an ftp URL")
	}
	if strings.Contains(err.Error(), "SECRETPATH") {
		t.Errorf("error shows the secret URL: %v", err)
	}
}

func TestParseConfigCAFile(t *testing.T) {
	_, caFile := selfSignedCert(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, wantErr string
	}{
		{name: "valid", file: caFile},
		{name: "missing", file: filepath.Join(t.TempDir(), "none.pem"), wantErr: "cannot read"},
		{name: "not PEM", file: notPEM, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := fmt.Sprintf("email: {host: h.example.com, ca_file: %q, from: a@example.com, "+
				"to: [b@example.com], events: [undo]}", tt.file)
			_, err := parseYAML(t, text, testEnv)
			if tt.wantErr == "" && err != nil {
				t.Errorf("ParseConfig: %v", err)
			}
			if tt.wantErr != "" && !hasProblem(err, "notify.email.ca_file", tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSecretIsHidden(t *testing.T) {
	cfg, err := parseYAML(t, fullConfig, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		text := fmt.Sprintf(format, cfg)
		for _, secret := range []string{"XXXXSECRET", "mail-secret", testSecret} {
			if strings.Contains(text, secret) {
				t.Errorf("%s of the configuration shows %q", format, secret)
			}
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(fullConfig)
	f.Add("slack: {token_env: SLACK_BOT_TOKEN, channel: '#x', events: ['*']}")
	f.Add("webhooks: [{url: 'http://127.0.0.1:1/h', secret_env: HOOK_SECRET, events: [sync], digest: {interval: 1s}}]")
	f.Fuzz(func(t *testing.T, text string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(text), &doc) != nil || len(doc.Content) == 0 {
			return
		}
		cfg, err := ParseConfig(doc.Content[0], testEnv)
		if err != nil {
			return
		}
		// A configuration that parses must build a dispatcher's senders.
		d := &Dispatcher{cfg: cfg}
		if err := d.addDestinations(); err != nil {
			t.Errorf("valid configuration does not build: %v", err)
		}
	})
}

func TestConfigWants(t *testing.T) {
	cfg := Config{
		Webhooks: []Webhook{{Destination: Destination{Events: []EventType{EventHold}, Tables: []string{"crm.*"}}}},
		Slack:    []Slack{{Destination: Destination{Events: []EventType{"*"}, Tables: []string{"billing.orders"}}}},
	}
	tests := []struct {
		typ   EventType
		table string
		want  bool
	}{
		{EventHold, "crm.customers", true},
		{EventSync, "crm.customers", false},
		{EventSync, "billing.orders", true},
		{EventBurst, "", true},
		{EventSync, "other.t", false},
	}
	for _, tt := range tests {
		if got := cfg.Wants(tt.typ, tt.table); got != tt.want {
			t.Errorf("Wants(%s, %q) = %v, want %v", tt.typ, tt.table, got, tt.want)
		}
	}
	if (&Config{}).Wants(EventHold, "crm.customers") {
		t.Error("a configuration without destinations wants an event")
	}
}
