package change

import (
	"unicode/utf8"
)

const lowerHex = "0123456789abcdef"

// AppendJSONString appends s to dst as a JSON string, with the bytes that json.Marshal
// writes for a Go string: invalid UTF-8 becomes U+FFFD, and control characters, <, >, &,
// U+2028 and U+2029 are escaped. It allocates only when dst has to grow, which is why
// the audit rows of a batch use it in place of json.Marshal.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is still to be copied unchanged
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendValueJSON appends the bytes that json.Marshal writes for v.JSON(): a JSON string
// for a Text value and null for every other kind.
func AppendValueJSON(dst []byte, v Value) []byte {
	if v.Kind == Text {
		return AppendJSONString(dst, v.Text)
	}
	return append(dst, "null"...)
}
