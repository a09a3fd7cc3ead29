package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// LookupEnv reads an environment variable, as os.LookupEnv does.
type LookupEnv func(name string) (string, bool)

// Load reads the configuration file at path with the process environment.
func Load(path string) (*Config, error) {
	return LoadFile(path, os.LookupEnv)
}

// LoadFile reads the configuration file at path, taking environment variables from
// lookupEnv. The error lists every problem found.
func LoadFile(path string, lookupEnv LookupEnv) (*Config, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the file to read
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := Parse(data, lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a YAML configuration, applies the URL overrides of lookupEnv and the
// defaults, and validates the result. Unknown keys and values of the wrong kind are
// reported with their lines; when there are none, every validation problem is reported
// too. The returned error joins one *FieldError per problem.
func Parse(data []byte, lookupEnv LookupEnv) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	doc := documentContent(&root)

	shape := newShapeChecker()
	if doc != nil {
		shape.check(doc, reflect.TypeFor[Config](), "")
	}
	if len(shape.values.errs) > 0 {
		return nil, errors.Join(append(shape.unknown.errs, shape.values.errs...)...)
	}

	cfg := defaults()
	if doc != nil {
		if err := doc.Decode(&cfg); err != nil {
			// The shape check passed, so this is a gap in it rather than a user error.
			return nil, fmt.Errorf("decode YAML: %w", err)
		}
	}

	p := &problems{errs: shape.unknown.errs, lines: shape.lines}
	cfg.resolveEnv(p, lookupEnv)
	cfg.fillDefaults()
	cfg.validate(p)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return &cfg, nil
}

// documentContent returns the top node of a parsed document, or nil for an empty file.
func documentContent(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		return root.Content[0]
	}
	if root.Kind == 0 {
		return nil
	}
	return root
}

// resolveEnv applies the environment: url_env names a variable to read a URL from, else
// CHANGESYNC_SOURCE_URL and CHANGESYNC_TARGET_URL override the file, and the variable that
// api.auth.jwt_secret_env names must be set. Nothing else is read from the environment.
func (c *Config) resolveEnv(p *problems, lookupEnv LookupEnv) {
	c.Source.URL, c.Source.urlFrom = resolveURL(p, "source", c.Source.URL, c.Source.URLEnv,
		EnvSourceURL, lookupEnv)
	c.Target.URL, c.Target.urlFrom = resolveURL(p, "target", c.Target.URL, c.Target.URLEnv,
		EnvTargetURL, lookupEnv)

	name := c.API.Auth.JWTSecretEnv
	if name != "" && validEnvName(name) {
		if v, ok := lookupEnv(name); !ok || v == "" {
			p.add("api.auth.jwt_secret_env", "environment variable %s is not set: set it to the "+
				"HS256 secret, or remove jwt_secret_env", name)
		}
	}
}

// resolveURL returns the URL of the source or target section and where it came from,
// for messages. A variable named by url_env is the most specific choice, so it wins over
// the general override, and when it is unset that is an error rather than a fallback.
func resolveURL(p *problems, section, fileURL, urlEnv, override string,
	lookupEnv LookupEnv,
) (url, from string) {
	if urlEnv == "" {
		if v, ok := lookupEnv(override); ok && v != "" {
			return v, section + ".url (from " + override + ")"
		}
		return fileURL, section + ".url"
	}

	switch {
	case fileURL != "":
		p.add(section+".url_env", "set either %s.url or %s.url_env, not both", section, section)
		return fileURL, section + ".url"
	case !validEnvName(urlEnv):
		return "", section + ".url_env" // reported by validate
	}

	v, ok := lookupEnv(urlEnv)
	if !ok || v == "" {
		p.add(section+".url_env", "environment variable %s is not set: set it to a connection "+
			"URL, or remove url_env to use %s.url or %s", urlEnv, section, override)
		return "", section + ".url_env"
	}
	return v, section + ".url (from " + urlEnv + ")"
}

// tableYAML is the YAML form of Table, with the table names as text.
type tableYAML struct {
	Source      string            `yaml:"source"`
	Target      string            `yaml:"target,omitempty"`
	Key         []string          `yaml:"key,omitempty"`
	Columns     map[string]string `yaml:"columns,omitempty"`
	Exclude     []string          `yaml:"exclude,omitempty"`
	Transform   map[string]string `yaml:"transform,omitempty"`
	Truncate    string            `yaml:"truncate,omitempty"`
	ActorColumn string            `yaml:"actor_column,omitempty"`
}

// UnmarshalYAML decodes a table mapping and parses its table names.
func (t *Table) UnmarshalYAML(n *yaml.Node) error {
	var raw tableYAML
	if err := n.Decode(&raw); err != nil {
		return err
	}
	*t = Table{
		Key: raw.Key, Columns: raw.Columns, Exclude: raw.Exclude, Transform: raw.Transform,
		Truncate: raw.Truncate, ActorColumn: raw.ActorColumn,
	}

	var errs []string
	if raw.Source != "" {
		name, err := ParseTableName(raw.Source)
		if err != nil {
			errs = append(errs, fmt.Sprintf("line %d: source: %v", n.Line, err))
		}
		t.Source = name
	}
	if raw.Target != "" {
		name, err := ParseTableName(raw.Target)
		if err != nil {
			errs = append(errs, fmt.Sprintf("line %d: target: %v", n.Line, err))
		}
		t.Target = name
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// MarshalYAML writes the table with its names as text.
func (t Table) MarshalYAML() (any, error) {
	raw := tableYAML{
		Source: FormatTableName(t.Source), Key: t.Key, Columns: t.Columns, Exclude: t.Exclude,
		Transform: t.Transform, Truncate: t.Truncate, ActorColumn: t.ActorColumn,
	}
	if t.Target != t.Source {
		raw.Target = FormatTableName(t.Target)
	}
	return raw, nil
}
