package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/datasense/changesync/pkg/change"
)

// maxIdentifierLen is the longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes in
// a default build); a longer one is truncated with only a NOTICE.
const maxIdentifierLen = 63

// ParseTableName parses a table name as SQL would read it: [schema.]table, where an
// unquoted part folds ASCII letters to lower case and a double-quoted part keeps its case
// and may contain any character, "" standing for one quote. A name without a schema is in
// public.
func ParseTableName(s string) (change.TableName, error) {
	parts, err := splitQualifiedName(s)
	if err != nil {
		return change.TableName{}, fmt.Errorf("invalid table name %q: %w", s, err)
	}

	switch len(parts) {
	case 1:
		return change.TableName{Schema: "public", Name: parts[0]}, nil
	case 2:
		return change.TableName{Schema: parts[0], Name: parts[1]}, nil
	default:
		return change.TableName{}, fmt.Errorf("invalid table name %q: it has %d dot-separated "+
			"parts; write schema.table, and double-quote a part that contains a dot", s, len(parts))
	}
}

// FormatTableName writes a table name in the form ParseTableName reads, quoting only the
// parts that need it.
func FormatTableName(t change.TableName) string {
	return formatIdentifier(t.Schema) + "." + formatIdentifier(t.Name)
}

// splitQualifiedName splits a dotted name into its identifiers, folding unquoted ones.
func splitQualifiedName(s string) ([]string, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("it is not valid UTF-8")
	}

	var parts []string
	rest := s
	for {
		part, after, err := cutIdentifier(rest)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
		if after == "" {
			return parts, nil
		}
		if after[0] != '.' {
			return nil, fmt.Errorf("unexpected %q after identifier %q: separate parts with a dot",
				after[:1], part)
		}
		rest = after[1:]
	}
}

// cutIdentifier reads one identifier from the start of s and returns it with the rest.
func cutIdentifier(s string) (ident, rest string, err error) {
	if strings.HasPrefix(s, `"`) {
		ident, rest, err = cutQuoted(s)
	} else {
		ident, rest, err = cutUnquoted(s)
	}
	if err != nil {
		return "", "", err
	}
	if len(ident) > maxIdentifierLen {
		return "", "", fmt.Errorf("identifier %q is %d bytes long, over PostgreSQL's limit of %d",
			ident, len(ident), maxIdentifierLen)
	}
	return ident, rest, nil
}

// cutQuoted reads a double-quoted identifier, in which "" stands for one quote.
func cutQuoted(s string) (ident, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == 0 {
			return "", "", errors.New("identifier contains a NUL byte, which PostgreSQL does not allow")
		}
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		if b.Len() == 0 {
			return "", "", errors.New(`empty quoted identifier ""`)
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", errors.New("missing closing double quote")
}

// cutUnquoted reads an unquoted identifier and folds it to lower case. As in SQL, it
// starts with a letter or underscore and goes on with letters, digits, _ and $; bytes
// above ASCII count as letters and are not folded.
func cutUnquoted(s string) (ident, rest string, err error) {
	end := 0
	for end < len(s) && isIdentByte(s[end], end == 0) {
		end++
	}
	if end == 0 {
		if s == "" {
			return "", "", errors.New("empty identifier")
		}
		r, _ := utf8.DecodeRuneInString(s)
		return "", "", fmt.Errorf("unexpected %q: an unquoted identifier starts with a letter "+
			"or underscore; double-quote other names", string(r))
	}
	return foldASCII(s[:end]), s[end:], nil
}

func isIdentByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= 0x80:
		return true
	case c >= '0' && c <= '9', c == '$':
		return !first
	}
	return false
}

// foldASCII lowers ASCII letters only, as PostgreSQL does for identifiers in UTF-8.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// formatIdentifier quotes an identifier unless it reads back unchanged without quotes.
func formatIdentifier(s string) string {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = isIdentByte(c, i == 0) && (c < 'A' || c > 'Z')
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
