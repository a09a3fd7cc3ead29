package validate

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// validator is the pipeline's Validator interface, restated so that this test does not
// import the pipeline, which will import this package.
type validator interface {
	Validate(ctx context.Context, tx *change.Tx, ev *change.Event) change.Decision
}

var _ validator = (*Agent)(nil)

func TestAgentApproveRuleBypassesLLM(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("reject", "no") })
	cfg := llmConfig(f, config.Rule{Name: "trusted", When: "actor == 'support-team'", Action: "approve"})
	a := newAgent(t, cfg, WithLookupEnv(testEnv))

	ev := notesChange("refund issued")
	ev.New[6] = change.TextValue("support-team")
	got := validateOne(t, a, ev)
	if got.Verdict != change.Approve || got.DecidedBy != "rule:trusted" {
		t.Errorf("decision = %+v, want approve by rule:trusted", got)
	}
	if n := len(f.calls()); n != 0 {
		t.Errorf("endpoint got %d requests, want none", n)
	}

	got = validateOne(t, a, notesChange("refund issued"))
	if got.Verdict != change.Reject || got.DecidedBy != "llm:"+testModel {
		t.Errorf("decision without the rule = %+v, want reject by the LLM", got)
	}
}

func TestAgentDecidesEachEventOfTx(t *testing.T) {
	a := newAgent(t, baseConfig(typicalRules()...))
	tx := newTx(400,
		notesChange("fine"),
		update(alice(), row("2", "Alice", "", "12345", "10.50", "likes email", "crm-app", "t")),
		update(alice(), row("2", "Alice", "1 Old Road", "12345", "11", "likes email", "crm-app", "t")),
	)
	want := []string{DefaultDecider, "rule:address-not-empty", "rule:hold-price"}
	for i := range tx.Events {
		if got := a.Validate(context.Background(), tx, &tx.Events[i]); got.DecidedBy != want[i] {
			t.Errorf("event %d decided by %q, want %q", i, got.DecidedBy, want[i])
		}
	}
}

func TestAgentEventOutsideTx(t *testing.T) {
	cfg := baseConfig(typicalRules()...)
	cfg.Guard.MaxRowsPerTx = 2
	a := newAgent(t, cfg)
	ctx := context.Background()

	tx := newTx(401, notesChange("a"))
	cp := update(alice(), row("2", "Alice", "", "12345", "10.50", "likes email", "crm-app", "t"))
	if got := a.Validate(ctx, tx, &cp); got.DecidedBy != "rule:address-not-empty" {
		t.Errorf("copy decided by %q, want rule:address-not-empty", got.DecidedBy)
	}

	bulk := newTx(402, notesChange("a"), notesChange("b"), notesChange("c"))
	stray := notesChange("d")
	if got := a.Validate(ctx, bulk, &stray); got.DecidedBy != BulkDecider {
		t.Errorf("copy of an event of a bulk transaction decided by %q, want %s", got.DecidedBy, BulkDecider)
	}
}

func TestAgentCanceledContextDecidesAgain(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("approve", "fine") })
	a := newAgent(t, llmConfig(f), WithLookupEnv(testEnv))
	tx := newTx(403, notesChange("a"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := a.Validate(ctx, tx, &tx.Events[0]); got.Verdict != change.Hold {
		t.Errorf("decision under a canceled context = %+v, want hold", got)
	}
	if got := a.Validate(context.Background(), tx, &tx.Events[0]); got.Verdict != change.Approve {
		t.Errorf("decision after the cancel = %+v, want approve from a new review", got)
	}
}

func TestAgentLogsRepeatedFailureOnce(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a := newAgent(t, baseConfig(config.Rule{Name: "typo", When: "new.zipcode == ''", Action: "reject"}),
		WithLogger(log), withClock(func() time.Time { return now }))

	for range 5 {
		validateOne(t, a, update(alice(), alice()))
	}
	if n := strings.Count(logs.String(), "rule evaluation failed"); n != 1 {
		t.Errorf("logged %d times within a minute, want 1:\n%s", n, logs.String())
	}

	now = now.Add(2 * time.Minute)
	validateOne(t, a, update(alice(), alice()))
	if !strings.Contains(logs.String(), `"repeats_not_logged":4`) {
		t.Errorf("second log does not count the 4 repeats:\n%s", logs.String())
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*config.Config)
		wantErr string
	}{
		{"negative cost limit", func(c *config.Config) { c.RuleCostLimit = -1 }, "rule_cost_limit -1 is invalid"},
		{"bad guard action", func(c *config.Config) { c.Guard.Action = "approve" }, `guard action "approve" is invalid`},
		{"short burst window", func(c *config.Config) {
			c.Guard.Burst = config.Burst{Factor: 2, Window: time.Minute}
		}, "a window of at least 2m"},
		{"llm without model", func(c *config.Config) {
			c.LLM = config.LLM{Enabled: true, BaseURL: "http://127.0.0.1:1/v1"}
		}, "without base_url or model"},
		{"bad llm column", func(c *config.Config) {
			c.LLM = config.LLM{Enabled: true, BaseURL: "http://127.0.0.1:1/v1", Model: "m", Columns: []string{"notes"}}
		}, `invalid column "notes"`},
	}
	env := WithLookupEnv(func(string) (string, bool) { return "key", true })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.edit(cfg)
			_, err := New(cfg, env)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
