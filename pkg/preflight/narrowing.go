package preflight

import (
	"fmt"
	"strings"
)

// narrowing describes how a target column's type modifier keeps a source value from
// arriving unchanged.
type narrowing struct {
	// effect describes what the target does to the values that do not fit, such as "rejects
	// values longer than 10 characters".
	effect string
	// silent is set when PostgreSQL changes such values without an error (rounding,
	// truncation of interval fields), so the target differs from the source and the audit.
	// Otherwise the target rejects them and the change fails.
	silent bool
	// wider is a target type that takes every source value, for ALTER COLUMN … TYPE.
	wider string
}

// The parts of pg_attribute.atttypmod as PostgreSQL 15 encodes them. The tests check
// each type's decoding against a server.
const (
	varHeaderSize          = 4      // added to numeric, varchar and char modifiers
	defaultFractionDigits  = 6      // fractional seconds of time, timestamp and interval
	intervalFullPrecision  = 0xFFFF // interval modifier precision part: not restricted
	intervalFullRange      = 0x7FFF // interval modifier range part: every field
	intervalMonthBit       = 1 << 1
	intervalYearBit        = 1 << 2
	intervalDayBit         = 1 << 3
	intervalHourBit        = 1 << 10
	intervalMinuteBit      = 1 << 11
	intervalSecondBit      = 1 << 12
	numericScaleMask       = 0x7FF // the scale is an 11-bit two's complement number
	numericScaleSignBit    = 0x400
	numericPrecisionOffset = 16
)

// integerDigits are the decimal digits of the largest value of each integer type.
var integerDigits = map[string]int{"smallint": 5, "integer": 10, "bigint": 19}

// checkNarrowing compares the type modifiers of a source column and the target column it
// is written to, and returns nil when every value of the source type fits the target.
// Only types whose values are limited by a modifier are compared: numeric, the character
// types, the bit string types, time, timestamp and interval.
//
// NOTE: a domain column has no modifier of its own (its atttypmod is -1), so a domain
// over numeric(4,1) is not compared.
func checkNarrowing(source, target column) *narrowing {
	switch target.typeName {
	case "numeric":
		return numericNarrowing(source, target)
	case "character varying", "character":
		return characterNarrowing(source, target)
	case "bit", "bit varying":
		return bitNarrowing(source, target)
	case "time without time zone", "time with time zone",
		"timestamp without time zone", "timestamp with time zone":
		return fractionNarrowing(source, target)
	case "interval":
		return intervalNarrowing(source, target)
	}
	return nil
}

// numericLimits returns the digits before and after the decimal point that a column
// holds, with bounded false for numeric without a modifier. ok is false for types that
// are neither numeric nor an integer type.
func numericLimits(c column) (integer, scale int, bounded, ok bool) {
	if digits, isInteger := integerDigits[c.typeName]; isInteger {
		return digits, 0, true, true
	}
	if c.typeName != "numeric" {
		return 0, 0, false, false
	}
	if c.typmod < varHeaderSize {
		return 0, 0, false, true
	}
	modifier := int(c.typmod) - varHeaderSize
	precision := (modifier >> numericPrecisionOffset) & 0xFFFF
	scale = modifier & numericScaleMask
	if scale&numericScaleSignBit != 0 {
		scale -= numericScaleMask + 1 // PostgreSQL 15 allows a negative scale
	}
	return precision - scale, scale, true, true
}

func numericNarrowing(source, target column) *narrowing {
	targetInteger, targetScale, targetBounded, _ := numericLimits(target)
	sourceInteger, sourceScale, sourceBounded, ok := numericLimits(source)
	if !ok || !targetBounded {
		return nil
	}

	wider := "numeric"
	if sourceBounded {
		integer, scale := max(sourceInteger, targetInteger), max(sourceScale, targetScale)
		wider = fmt.Sprintf("numeric(%d,%d)", integer+scale, scale)
	}
	switch {
	case !sourceBounded || sourceScale > targetScale:
		effect := fmt.Sprintf("rounds values to %s after the decimal point without an error",
			plural(targetScale, "digit"))
		if targetScale < 0 {
			effect = fmt.Sprintf("rounds values to multiples of 1e%d without an error", -targetScale)
		}
		if !sourceBounded || sourceInteger > targetInteger {
			effect += fmt.Sprintf(", and rejects values with more than %d digits before it",
				targetInteger)
		}
		return &narrowing{effect: effect, silent: true, wider: wider}
	case sourceInteger > targetInteger:
		return &narrowing{effect: fmt.Sprintf("rejects values with more than %d digits before "+
			"the decimal point", targetInteger), wider: wider}
	}
	return nil
}

// characterLength returns the maximum length in characters of a character column, with
// bounded false for text and for varchar without a length. ok is false for other types.
func characterLength(c column) (length int, bounded, ok bool) {
	switch c.typeName {
	case "text", "citext":
		return 0, false, true
	case "character varying", "character":
		if c.typmod < varHeaderSize {
			return 0, false, true
		}
		return int(c.typmod) - varHeaderSize, true, true
	}
	return 0, false, false
}

func characterNarrowing(source, target column) *narrowing {
	targetLength, _, _ := characterLength(target) // character(n) and varchar(n) are bounded
	if target.typmod < varHeaderSize {
		return nil // varchar without a length
	}
	sourceLength, sourceBounded, ok := characterLength(source)
	if !ok || (sourceBounded && sourceLength <= targetLength) {
		return nil
	}

	wider := "text"
	if sourceBounded {
		wider = fmt.Sprintf("%s(%d)", target.typeName, sourceLength)
	} else if target.typeName == "character varying" {
		wider = target.typeName
	}
	// PostgreSQL cuts excess characters without an error only when they are all spaces.
	effect := fmt.Sprintf("rejects values longer than %d characters", targetLength)
	return &narrowing{effect: effect, wider: wider}
}

// bitLength returns the length of a bit string column: exact for bit(n), a maximum for
// bit varying(n), and bounded false for bit varying without a length.
func bitLength(c column) (length int, bounded, ok bool) {
	if c.typeName != "bit" && c.typeName != "bit varying" {
		return 0, false, false
	}
	if c.typmod < 0 {
		return 0, false, true
	}
	return int(c.typmod), true, true
}

func bitNarrowing(source, target column) *narrowing {
	targetLength, targetBounded, _ := bitLength(target)
	sourceLength, sourceBounded, ok := bitLength(source)
	if !ok || !targetBounded {
		return nil
	}
	if target.typeName == "bit" {
		if source.typeName == "bit" && sourceLength == targetLength {
			return nil
		}
		return &narrowing{effect: fmt.Sprintf("takes exactly %d bits and rejects values of "+
			"another length", targetLength), wider: source.typ}
	}
	if sourceBounded && sourceLength <= targetLength {
		return nil
	}
	wider := "bit varying"
	if sourceBounded {
		wider = fmt.Sprintf("bit varying(%d)", sourceLength)
	}
	effect := fmt.Sprintf("rejects values longer than %d bits", targetLength)
	return &narrowing{effect: effect, wider: wider}
}

// fractionDigits returns the fractional-second digits that a time or timestamp column
// keeps. ok is false for other types; date keeps none.
func fractionDigits(c column) (digits int, ok bool) {
	switch c.typeName {
	case "date":
		return 0, true
	case "time without time zone", "time with time zone",
		"timestamp without time zone", "timestamp with time zone":
		if c.typmod < 0 {
			return defaultFractionDigits, true
		}
		return int(c.typmod), true
	}
	return 0, false
}

func fractionNarrowing(source, target column) *narrowing {
	targetDigits, _ := fractionDigits(target)
	sourceDigits, ok := fractionDigits(source)
	if !ok || sourceDigits <= targetDigits {
		return nil
	}
	// format_type writes the precision after the first word: timestamp(3) with time zone.
	first, rest, _ := strings.Cut(target.typeName, " ")
	wider := fmt.Sprintf("%s(%d)", first, sourceDigits)
	if rest != "" {
		wider += " " + rest
	}
	return &narrowing{effect: roundsSeconds(targetDigits), silent: true, wider: wider}
}

func roundsSeconds(digits int) string {
	return fmt.Sprintf("rounds fractional seconds to %s without an error", plural(digits, "digit"))
}

// intervalFields are the interval fields from the coarsest to the finest, with the bit
// that an interval modifier sets for each.
var intervalFields = []struct {
	name string
	bit  int
}{
	{"YEAR", intervalYearBit},
	{"MONTH", intervalMonthBit},
	{"DAY", intervalDayBit},
	{"HOUR", intervalHourBit},
	{"MINUTE", intervalMinuteBit},
	{"SECOND", intervalSecondBit},
}

// intervalLimits returns the index in intervalFields of the finest field that an
// interval column keeps, and its fractional-second digits.
func intervalLimits(c column) (finest, digits int) {
	finest, digits = len(intervalFields)-1, defaultFractionDigits
	if c.typmod < 0 {
		return finest, digits
	}
	if precision := int(c.typmod) & 0xFFFF; precision != intervalFullPrecision {
		digits = precision
	}
	fields := (int(c.typmod) >> 16) & intervalFullRange
	if fields == intervalFullRange {
		return finest, digits
	}
	for i := len(intervalFields) - 1; i >= 0; i-- {
		if fields&intervalFields[i].bit != 0 {
			return i, digits
		}
	}
	return finest, digits
}

func intervalNarrowing(source, target column) *narrowing {
	if source.typeName != "interval" {
		return nil
	}
	sourceFinest, sourceDigits := intervalLimits(source)
	targetFinest, targetDigits := intervalLimits(target)
	seconds := len(intervalFields) - 1
	switch {
	case targetFinest < sourceFinest:
		return &narrowing{effect: fmt.Sprintf("drops the parts of values finer than %s without an error",
			intervalFields[targetFinest].name), silent: true, wider: source.typ}
	case sourceFinest == seconds && targetDigits < sourceDigits:
		return &narrowing{effect: roundsSeconds(targetDigits), silent: true, wider: source.typ}
	}
	return nil
}
