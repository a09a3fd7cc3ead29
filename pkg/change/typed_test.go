package change

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// typedRelation has one column per type the tests decode.
var typedRelation = &Relation{
	OID:   16400,
	Table: TableName{Schema: "public", Name: "typed"},
	Columns: []Column{
		{Name: "i4", TypeOID: pgtype.Int4OID},
		{Name: "i8", TypeOID: pgtype.Int8OID},
		{Name: "b", TypeOID: pgtype.BoolOID},
		{Name: "t", TypeOID: pgtype.TextOID},
		{Name: "ts", TypeOID: pgtype.TimestamptzOID},
		{Name: "f8", TypeOID: pgtype.Float8OID},
		{Name: "raw", TypeOID: pgtype.ByteaOID},
		{Name: "mood", TypeOID: 99999, TypeName: "public.mood"},
		{Name: "d", TypeOID: pgtype.DateOID},
	},
}

func TestTyped(t *testing.T) {
	m := pgtype.NewMap()
	tests := []struct {
		name    string
		col     int
		in      Value
		want    any
		wantErr error
	}{
		{name: "int4", col: 0, in: TextValue("42"), want: int32(42)},
		{name: "int8", col: 1, in: TextValue("-9000000000"), want: int64(-9000000000)},
		{name: "bool", col: 2, in: TextValue("t"), want: true},
		{name: "text", col: 3, in: TextValue("NULL"), want: "NULL"},
		{name: "empty text", col: 3, in: TextValue(""), want: ""},
		{
			name: "float8 full precision", col: 5, in: TextValue("1.0000000000000002"),
			want: 1.0000000000000002,
		},
		{name: "bytea hex", col: 6, in: TextValue(`\x01ff`), want: []byte{0x01, 0xff}},
		{name: "unknown oid keeps text", col: 7, in: TextValue("happy"), want: "happy"},
		{name: "null", col: 0, in: NullValue(), want: nil},
		{name: "unchanged", col: 3, in: Value{Kind: Unchanged}, wantErr: ErrUnchanged},
		{name: "absent", col: 3, in: Value{Kind: Absent}, wantErr: ErrAbsent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := typedRelation.Typed(m, tt.col, tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Typed() error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Typed() = %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestTypedTimes(t *testing.T) {
	tests := []struct {
		name string
		col  int
		in   string
		want time.Time
	}{
		{
			"timestamptz", 4, "2024-01-02 03:04:05.5+00",
			time.Date(2024, 1, 2, 3, 4, 5, 500_000_000, time.UTC),
		},
		{
			"timestamptz offset", 4, "2024-01-02 08:49:05+05:45",
			time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		{"date", 8, "2024-02-29", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	m := pgtype.NewMap()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := typedRelation.Typed(m, tt.col, TextValue(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if ts, ok := got.(time.Time); !ok || !ts.Equal(tt.want) {
				t.Errorf("Typed(%q) = %#v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTypedRejectsBadInput(t *testing.T) {
	m := pgtype.NewMap()
	tests := []struct {
		name string
		col  int
		in   Value
	}{
		{"int4 not a number", 0, TextValue("forty-two")},
		{"int4 out of range", 0, TextValue("3000000000")},
		{"bool not a bool", 2, TextValue("maybe")},
		{"column below range", -1, TextValue("1")},
		{"column above range", len(typedRelation.Columns), TextValue("1")},
		{"invalid kind", 0, Value{Kind: Kind(9), Text: "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := typedRelation.Typed(m, tt.col, tt.in)
			if err == nil {
				t.Errorf("Typed() = %#v, want an error", got)
			}
		})
	}
}

func TestTypedRow(t *testing.T) {
	rel := &Relation{
		Table: TableName{Schema: "public", Name: "row"},
		Columns: []Column{
			{Name: "id", TypeOID: pgtype.Int4OID},
			{Name: "note", TypeOID: pgtype.TextOID},
			{Name: "big", TypeOID: pgtype.TextOID},
		},
	}
	row, err := rel.TypedRow(pgtype.NewMap(), Tuple{TextValue("7"), NullValue(), {Kind: Unchanged}})
	if err != nil {
		t.Fatal(err)
	}

	if row["id"] != int32(7) {
		t.Errorf("id = %#v, want int32(7)", row["id"])
	}
	if v, ok := row["note"]; !ok || v != nil {
		t.Errorf("note = %#v (present %v), want nil for NULL", v, ok)
	}
	if _, ok := row["big"]; ok {
		t.Error("unchanged column big is present, want it left out")
	}
}

func TestTypedRowErrors(t *testing.T) {
	rel := &Relation{
		Table:   TableName{Schema: "public", Name: "row"},
		Columns: []Column{{Name: "id", TypeOID: pgtype.Int4OID}},
	}
	m := pgtype.NewMap()

	if _, err := rel.TypedRow(m, Tuple{TextValue("1"), TextValue("2")}); err == nil {
		t.Error("TypedRow with two values for one column succeeded, want an error")
	}
	if _, err := rel.TypedRow(m, Tuple{TextValue("x")}); err == nil {
		t.Error("TypedRow with a non-integer int4 succeeded, want an error")
	}
}

// fuzzTypeOIDs are the types FuzzTyped decodes, chosen for codecs that parse structure:
// numbers, dates, intervals, arrays, ranges, JSON, network and geometric types.
var fuzzTypeOIDs = []uint32{
	pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID,
	pgtype.NumericOID, pgtype.BoolOID, pgtype.TextOID, pgtype.ByteaOID, pgtype.DateOID,
	pgtype.TimestampOID, pgtype.TimestamptzOID, pgtype.TimeOID, pgtype.IntervalOID,
	pgtype.UUIDOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.InetOID, pgtype.CIDROID,
	pgtype.Int4ArrayOID, pgtype.TextArrayOID, pgtype.Int4rangeOID, pgtype.TstzrangeOID,
	pgtype.PointOID, pgtype.BoxOID, pgtype.CircleOID, pgtype.PolygonOID, pgtype.PathOID,
	pgtype.LineOID, pgtype.LsegOID, pgtype.BitOID, pgtype.VarbitOID, pgtype.MacaddrOID,
	pgtype.XIDOID, pgtype.Int4multirangeOID, pgtype.TIDOID, pgtype.NumericArrayOID, 99999,
}

func FuzzTyped(f *testing.F) {
	seeds := []string{
		"1", "-1.5e10", "NaN", "2024-01-02", "infinity", `\x00ff`, "{1,2,NULL}",
		`{"a":[1]}`, "[1,5)", "(1,2),(3,4)", "<(1,2),3>", "1 day 02:03:04", "192.168.0.1/24",
		"101", "08:00:2b:01:02:03", `"a"=>"b"`, "(0,1)", "{[1,2)}", "",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	m := pgtype.NewMap()

	f.Fuzz(func(t *testing.T, pick uint8, text string) {
		oid := fuzzTypeOIDs[int(pick)%len(fuzzTypeOIDs)]
		rel := &Relation{Columns: []Column{{Name: "c", TypeOID: oid}}}
		got, err := rel.Typed(m, 0, TextValue(text))
		if err == nil && got == nil {
			t.Errorf("Typed(oid %d, %q) = nil without an error, want a value", oid, text)
		}
	})
}
