package change

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the write-ahead log. It is stored as bigint in our own tables
// because pgx has no binary codec for pg_lsn.
type LSN uint64

// String formats the LSN the way PostgreSQL does, as two hexadecimal halves: 16/B374D848.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses the PostgreSQL text form of an LSN, such as 16/B374D848.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse lsn %q: want two hexadecimal halves separated by '/'", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: upper half: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: lower half: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}
