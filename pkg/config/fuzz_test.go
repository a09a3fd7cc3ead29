package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must not panic, and a configuration
// it returns must pass validation again.
func FuzzLoad(f *testing.F) {
	design, err := os.ReadFile(filepath.Join("testdata", "design.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(design),
		minimal,
		"",
		"tables: [{source: a}]",
		"source: {url: 'postgres://u:p@h:x/d'}",
		"source: {url_env: X}\ntables: [{source: '\"A\".b', key: [id], columns: {a: b}}]",
		"a: &a [1]\nrules: *a",
		"tables: [{<<: {truncate: apply}, source: a.b}]",
		"llm: {enabled: true, columns: [a.b.c]}",
		"api: {listen: '[::1]:80'}",
	} {
		f.Add([]byte(seed))
	}
	env := envOf(map[string]string{"X": "postgres://crm@db/crm", "CHANGESYNC_JWT_SECRET": "s"})

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, env)
		if err != nil {
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a configuration nor an error")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse returned a configuration that fails validation: %v\ninput:\n%s", err, data)
		}
		_ = cfg.String()
	})
}
