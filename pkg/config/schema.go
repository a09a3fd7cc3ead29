package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/datasense/changesync/pkg/change"
)

// maxNodes bounds how many YAML nodes checkShape visits, counting every use of an alias,
// so that a small file of nested aliases cannot make it run for ever.
const maxNodes = 100_000

var (
	nodeType      = reflect.TypeFor[yaml.Node]()
	tableNameType = reflect.TypeFor[change.TableName]()
	durationType  = reflect.TypeFor[time.Duration]()
)

// shapeChecker walks the YAML tree beside the Go type it decodes into and reports, with
// field paths and lines, what yaml.v3 would otherwise report by Go type names: unknown
// keys, keys set twice, and values of the wrong kind. It also records the line of every
// field for the later validation messages.
type shapeChecker struct {
	unknown problems // unknown keys, which do not disturb decoding
	values  problems // values that cannot be decoded
	lines   map[string]int
	visited int
}

func newShapeChecker() *shapeChecker {
	lines := map[string]int{}
	return &shapeChecker{unknown: problems{lines: lines}, values: problems{lines: lines}, lines: lines}
}

// check walks node as a value of type t at the field path.
func (c *shapeChecker) check(n *yaml.Node, t reflect.Type, path string) {
	c.visited++
	if c.visited == maxNodes {
		c.values.add(path, "the document has more than %d nodes once aliases are expanded: "+
			"write the configuration without deeply nested aliases", maxNodes)
	}
	if c.visited >= maxNodes {
		return
	}
	if n.Kind == yaml.AliasNode {
		c.check(n.Alias, t, path)
		return
	}
	if path != "" {
		if _, seen := c.lines[path]; !seen {
			c.lines[path] = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value leaves the field at its default
	}

	switch {
	case t == nodeType:
	case t == tableNameType:
		c.checkTableName(n, path)
	case t == durationType:
		// yaml.v3 decodes no plain number into a duration, but a bare 0 is clear, and
		// the documentation uses it to turn a feature off.
		if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && n.Value == "0" {
			n.Tag, n.Value = "!!str", "0s"
		}
		c.checkScalar(n, t, path, "a duration such as 10s, 500ms or 1m30s")
	case t.Kind() == reflect.Struct:
		c.checkStruct(n, t, path)
	case t.Kind() == reflect.Slice:
		c.checkSequence(n, t, path)
	case t.Kind() == reflect.Map:
		c.checkMap(n, t, path)
	case t.Kind() == reflect.Int:
		c.checkScalar(n, t, path, "a whole number")
	case t.Kind() == reflect.Bool:
		c.checkScalar(n, t, path, "true or false")
	default:
		c.checkScalar(n, t, path, "a single value, not a list or mapping")
	}
}

// checkScalar decodes the node on its own, so yaml.v3's own rules decide what fits.
func (c *shapeChecker) checkScalar(n *yaml.Node, t reflect.Type, path, want string) {
	if n.Kind != yaml.ScalarNode {
		c.values.add(path, "expected %s, found a %s", want, kindName(n.Kind))
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		c.values.add(path, "invalid value %q: use %s", n.Value, want)
	}
}

func (c *shapeChecker) checkTableName(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		c.values.add(path, "expected a table name such as crm.customers, found a %s", kindName(n.Kind))
		return
	}
	if _, err := ParseTableName(n.Value); err != nil {
		c.values.add(path, "%v", err)
	}
}

func (c *shapeChecker) checkSequence(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.SequenceNode {
		c.values.add(path, "expected a list, found a %s", kindName(n.Kind))
		return
	}
	for i, item := range n.Content {
		c.check(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")
	}
}

func (c *shapeChecker) checkMap(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		c.values.add(path, "expected a mapping of names to values, found a %s", kindName(n.Kind))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			c.values.add(path, "expected a name as key, found a %s", kindName(key.Kind))
			continue
		}
		field := joinPath(path, key.Value)
		if first, dup := seen[key.Value]; dup {
			c.values.addAt(field, key.Line, "set twice, on lines %d and %d: keep one", first, key.Line)
			continue
		}
		seen[key.Value] = key.Line
		c.check(value, t.Elem(), field)
	}
}

func (c *shapeChecker) checkStruct(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		c.values.add(orRoot(path), "expected a mapping of keys to values, found a %s", kindName(n.Kind))
		return
	}
	fields := yamlFields(t)
	c.checkFields(n, t, fields, path, map[string]int{})
}

// checkFields checks the keys of one mapping against a struct's fields. Merge keys (<<)
// bring in the keys of other mappings.
func (c *shapeChecker) checkFields(n *yaml.Node, t reflect.Type, fields map[string]reflect.Type,
	path string, seen map[string]int,
) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if key.ShortTag() == "!!merge" {
			// Keys set in the mapping itself override merged ones, so merged keys are not
			// counted as set.
			c.checkMerge(value, t, fields, path)
			continue
		}
		field := joinPath(path, key.Value)
		ft, ok := fields[key.Value]
		switch {
		case key.Kind != yaml.ScalarNode:
			c.values.add(orRoot(path), "expected a key name, found a %s", kindName(key.Kind))
		case !ok:
			c.unknown.addAt(field, key.Line, "unknown key: use %s", orList(sortedKeys(fields)))
		case seen[key.Value] != 0:
			c.values.addAt(field, key.Line, "set twice, on lines %d and %d: keep one", seen[key.Value], key.Line)
		default:
			seen[key.Value] = key.Line
			c.check(value, ft, field)
		}
	}
}

func (c *shapeChecker) checkMerge(n *yaml.Node, t reflect.Type, fields map[string]reflect.Type, path string) {
	c.visited++
	if c.visited >= maxNodes {
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		c.checkMerge(n.Alias, t, fields, path)
	case yaml.MappingNode:
		c.checkFields(n, t, fields, path, map[string]int{})
	case yaml.SequenceNode:
		for _, item := range n.Content {
			c.checkMerge(item, t, fields, path)
		}
	default:
		c.values.add(orRoot(path), "a merge key (<<) needs a mapping or a list of mappings")
	}
}

// yamlFields maps the yaml keys of a struct to the types of its fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = f.Type
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

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	case yaml.DocumentNode:
		return "document"
	case yaml.AliasNode:
		return "alias"
	}
	return "empty value"
}
