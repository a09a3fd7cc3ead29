package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/datasense/changesync/pkg/pgtest"
)

func TestInvalidTransformStopsStart(t *testing.T) {
	sourceURL, targetURL := pgtest.NewDB(t), pgtest.NewDB(t)
	for _, url := range []string{sourceURL, targetURL} {
		if _, err := connect(t, url).Exec(context.Background(), "CREATE TABLE t (id int PRIMARY KEY, zip text)"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		table string
		want  []string
	}{
		{
			name:  "bad expression",
			table: `{source: public.t, transform: {zip: "nwe.zip.trim()"}}`,
			want:  []string{"tables[0].transform.zip: line 1, column 1: undeclared reference to 'nwe'"},
		},
		{
			name:  "list result",
			table: `{source: public.t, transform: {zip: "[new.zip]"}}`,
			want:  []string{"tables[0].transform.zip: the expression is of type list(dyn)"},
		},
		{
			name:  "key column",
			table: `{source: public.t, key: [id], transform: {id: "new.id + 1"}}`,
			want:  []string{"tables[0].transform.id", `column "id" is in tables[].key`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := writeConfig(t, "source: {slot: bad_transform}\ntables: ["+tc.table+"]\n")
			for _, command := range []string{"check", "run"} {
				cmd := exec.Command(binary, command, "--config", cfgPath)
				cmd.Env = append(os.Environ(), "CHANGESYNC_SOURCE_URL="+sourceURL, "CHANGESYNC_TARGET_URL="+targetURL)
				out, err := cmd.CombinedOutput()
				if err == nil {
					t.Errorf("%s accepted an invalid transform:\n%s", command, out)
				}
				for _, want := range tc.want {
					if !strings.Contains(string(out), want) {
						t.Errorf("%s output lacks %q:\n%s", command, want, out)
					}
				}
			}
		})
	}
}
