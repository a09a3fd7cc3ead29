package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/undo"
)

func TestUndoCommandUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad change id", []string{"--config", "x.yaml", "--change", "42"}, `--change "42" is not a UUID`},
		{"bad since", []string{"--config", "x.yaml", "--since", "yesterday"}, "not an RFC 3339 time"},
		{"missing config", []string{"--change", uuid.NewString()}, "missing --config"},
		{"stray argument", []string{"--config", "x.yaml", "now"}, `unexpected argument "now"`},
		{"unknown flag", []string{"--config", "x.yaml", "--row", "1"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CHANGESYNC_CONFIG", "")
			err := runUndoCommand(context.Background(), tt.args, &bytes.Buffer{})
			var usage *usageError
			if !errors.As(err, &usage) {
				t.Fatalf("runUndoCommand error = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestUndoCommandPrintsConflicts(t *testing.T) {
	found := "c"
	res := undo.Result{
		RequestID: uuid.MustParse("01900000-0000-7000-8000-000000000001"), Status: undo.StatusConflict,
		Changes: []undo.Change{{Op: "update", TargetTable: "billing.customers", RowKey: "42", Action: undo.ActionUpdate}},
		Conflicts: []undo.Conflict{{
			Table: "billing.customers", RowKey: "42", Column: "zip", Found: &found, Reason: undo.ReasonChanged,
		}},
	}
	var out bytes.Buffer
	printUndoResult(&out, &res)
	for _, want := range []string{
		"undo request 01900000-0000-7000-8000-000000000001: conflict, 1 changes",
		"billing.customers", "zip", `NULL`, `"c"`, undo.ReasonChanged,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSplitTablesKeepsQuotedCommas(t *testing.T) {
	got := splitTables(`crm.customers, "Odd, Schema"."a""b,c",billing.x`)
	want := []string{`crm.customers`, ` "Odd, Schema"."a""b,c"`, `billing.x`}
	if !slices.Equal(got, want) {
		t.Errorf("splitTables = %q, want %q", got, want)
	}
}
