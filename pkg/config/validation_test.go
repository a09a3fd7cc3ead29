package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidationDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"rule cost limit", cfg.RuleCostLimit, 100_000},
		{"burst factor", cfg.Guard.Burst.Factor, 10},
		{"burst window", cfg.Guard.Burst.Window, time.Hour},
		{"burst min changes", cfg.Guard.Burst.MinChanges, 1000},
		{"llm max concurrency", cfg.LLM.MaxConcurrency, 4},
		{"llm cache size", cfg.LLM.CacheSize, 10_000},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestValidationSettings(t *testing.T) {
	input := configWith(`rule_cost_limit: 500
rules: [{name: zip, when: "new.zip == ''", action: reject, reason: zip code is empty}]
guard: {max_rows_per_tx: 10, burst: {factor: 0, window: 15m, min_changes: 50}}
llm: {max_concurrency: 16, cache_size: 0, instructions: reject card numbers}
audit: {max_value_bytes: 1024}`)
	cfg, err := Parse([]byte(input), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"rule cost limit", cfg.RuleCostLimit, 500},
		{"rule reason", cfg.Rules[0].Reason, "zip code is empty"},
		{"burst", cfg.Guard.Burst, Burst{Factor: 0, Window: 15 * time.Minute, MinChanges: 50}},
		{"llm max concurrency", cfg.LLM.MaxConcurrency, 16},
		{"llm cache size", cfg.LLM.CacheSize, 0},
		{"llm instructions", cfg.LLM.Instructions, "reject card numbers"},
		{"audit max value bytes", cfg.Audit.MaxValueBytes, 1024},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestValidationRejects(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{"zero rule cost limit", "rule_cost_limit: 0", "rule_cost_limit: invalid value 0: use a positive number"},
		{"text rule cost limit", "rule_cost_limit: lots", `rule_cost_limit: invalid value "lots": use a whole number`},
		{"negative burst factor", "guard: {burst: {factor: -2}}", "guard.burst.factor: invalid value -2: use 0 (off)"},
		{"short burst window", "guard: {burst: {window: 90s}}", "guard.burst.window: invalid duration 1m30s: use at least 2m"},
		{"negative burst minimum", "guard: {burst: {min_changes: -1}}", "guard.burst.min_changes: invalid value -1"},
		{"unknown burst key", "guard: {burst: {ratio: 3}}", "guard.burst.ratio: unknown key: use factor, min_changes or window"},
		{"zero llm concurrency", "llm: {max_concurrency: 0}", "llm.max_concurrency: invalid value 0: use a positive number"},
		{"negative llm cache", "llm: {cache_size: -1}", "llm.cache_size: invalid value -1: use 0 (no cache)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(configWith(tt.input)), noEnv)
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.input)
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
