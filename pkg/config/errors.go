package config

import (
	"fmt"
	"strings"
)

// FieldError is one invalid setting: the field path as written in the file (such as
// tables[1].truncate), the line when known, and what is wrong and how to fix it.
type FieldError struct {
	Field   string
	Line    int
	Problem string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Field, e.Line, e.Problem)
	}
	return e.Field + ": " + e.Problem
}

// problems collects the FieldErrors of one load, with the lines of the fields the file
// set so that each can name its line.
type problems struct {
	errs  []error
	lines map[string]int
}

func (p *problems) add(field, format string, args ...any) {
	p.addAt(field, p.line(field), format, args...)
}

func (p *problems) addAt(field string, line int, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Field: field, Line: line, Problem: fmt.Sprintf(format, args...)})
}

// line returns the line of the field or, failing that, of the nearest enclosing field
// that the file set.
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

// invalidChoice reports a value that is not one of the allowed words.
func (p *problems) invalidChoice(field, value string, choices ...string) {
	p.add(field, "invalid value %q: use %s", value, orList(choices))
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
