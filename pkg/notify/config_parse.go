package notify

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/datasense/changesync/pkg/config"
)

// ParseConfig decodes the notify node of the changesync configuration, reads the secrets
// and URLs from the environment variables it names through lookupEnv, fills in the
// defaults and validates the result. An empty node is a configuration without
// destinations. The error joins one *config.FieldError per problem, each naming the
// field, the value and the fix.
func ParseConfig(node *yaml.Node, lookupEnv config.LookupEnv) (Config, error) {
	cfg := Config{Retry: Retry{Jitter: DefaultJitter}}
	if node == nil || node.Kind == 0 {
		cfg.fillDefaults()
		return cfg, nil
	}

	p := &problems{lines: map[string]int{}}
	if node.Kind != yaml.MappingNode {
		p.addAt("notify", node.Line, "must be a mapping with slack, email or webhooks")
		return Config{}, p.err()
	}

	node, p.singular = listifyDestinations(node)
	p.checkKeys(node, reflect.TypeFor[Config](), "notify")
	if err := node.Decode(&cfg); err != nil {
		p.addAt("notify", node.Line, "%s", decodeProblem(err))
	}
	if len(p.errs) > 0 {
		return Config{}, p.err()
	}

	cfg.resolveEnv(p, lookupEnv)
	cfg.fillDefaults()
	cfg.validate(p)
	if len(p.errs) > 0 {
		return Config{}, p.err()
	}
	return cfg, nil
}

// listifyDestinations returns a copy of the notify mapping in which a slack or email
// mapping is wrapped in a one-element list, and the kinds that were wrapped, whose paths
// then have no index.
func listifyDestinations(node *yaml.Node) (*yaml.Node, map[string]bool) {
	out := *node
	out.Content = slices.Clone(node.Content)
	singular := map[string]bool{}

	for i := 0; i+1 < len(out.Content); i += 2 {
		key, value := out.Content[i], out.Content[i+1]
		if (key.Value == "slack" || key.Value == "email") && value.Kind == yaml.MappingNode {
			out.Content[i+1] = &yaml.Node{
				Kind: yaml.SequenceNode, Tag: "!!seq", Line: value.Line, Column: value.Column,
				Content: []*yaml.Node{value},
			}
			singular[key.Value] = true
		}
	}
	return &out, singular
}

// decodeProblem turns a YAML decoding error into the text of a problem: the lines it
// lists, without the library's prefix.
func decodeProblem(err error) string {
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		return "invalid value: " + strings.Join(typeErr.Errors, "; ") +
			" (durations are written like 500ms, 10s or 5m)"
	}
	return "invalid value: " + err.Error()
}

// problems collects the invalid settings of one parse.
type problems struct {
	errs     []error
	lines    map[string]int  // line of each field the file set, by path
	singular map[string]bool // kinds written as one mapping instead of a list
}

func (p *problems) add(field, format string, args ...any) {
	p.addAt(field, p.line(field), format, args...)
}

func (p *problems) addAt(field string, line int, format string, args ...any) {
	p.errs = append(p.errs, &config.FieldError{Field: field, Line: line, Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// line returns the line of the field or of the nearest enclosing field the file set.
func (p *problems) line(field string) int {
	for field != "" {
		if n, ok := p.lines[field]; ok {
			return n
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return 0
		}
		field = field[:i]
	}
	return 0
}

// destinationPath returns the path of the i-th destination of a kind, as the file wrote
// it: notify.slack for a single mapping, notify.slack[0] for a list.
func (p *problems) destinationPath(kind string, i int) string {
	if p.singular[kind] {
		return "notify." + kind
	}
	return fmt.Sprintf("notify.%s[%d]", kind, i)
}

// checkKeys reports the keys of a mapping that no field of the struct type t has, and
// records the line of each key that it knows, recursing into nested structs and lists.
func (p *problems) checkKeys(node *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}

	switch {
	case node.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, item := range node.Content {
			p.checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case node.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			key := node.Content[i]
			fieldPath := path + "." + key.Value
			ft, ok := fields[key.Value]
			if !ok {
				p.addAt(fieldPath, key.Line, "unknown field: use one of %s", strings.Join(sortedKeys(fields), ", "))
				continue
			}
			p.lines[fieldPath] = key.Line
			p.checkKeys(node.Content[i+1], ft, fieldPath)
		}
	}
}

// yamlFields returns the YAML keys of a struct type and their field types, including the
// fields of inline structs. Fields tagged "-" have no key.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case opts == "inline":
			for k, v := range yamlFields(f.Type) {
				fields[k] = v
			}
		case name != "":
			fields[name] = f.Type
		}
	}
	return fields
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
