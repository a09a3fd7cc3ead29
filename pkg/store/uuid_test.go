package store

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

func TestRegisterUUIDEncodesBinary(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11")

	got, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, u[:]) {
		t.Errorf("binary uuid = %x, want %x", got, u[:])
	}
	plan := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, u)
	if _, ok := plan.(encodePlanUUIDBinary); !ok {
		t.Errorf("encode plan = %T, want encodePlanUUIDBinary", plan)
	}
}

func TestRegisterUUIDEncodesText(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11")

	for _, oid := range []uint32{pgtype.UUIDOID, pgtype.TextOID} {
		got, err := m.Encode(oid, pgtype.TextFormatCode, u, nil)
		if err != nil {
			t.Fatalf("oid %d: %v", oid, err)
		}
		if string(got) != u.String() {
			t.Errorf("oid %d: text = %q, want %q", oid, got, u.String())
		}
	}
	got, err := m.Encode(pgtype.TextOID, pgtype.BinaryFormatCode, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != u.String() {
		t.Errorf("binary text = %q, want %q", got, u.String())
	}
}

func TestRegisterUUIDEncodesArrays(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	ids := []uuid.UUID{uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11"), uuid.Nil}

	got, err := m.Encode(pgtype.UUIDArrayOID, pgtype.TextFormatCode, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "{" + ids[0].String() + "," + ids[1].String() + "}"
	if string(got) != want {
		t.Errorf("text uuid[] = %s, want %s", got, want)
	}

	bin, err := m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	var back []uuid.UUID
	if err := m.Scan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, bin, &back); err != nil {
		t.Fatalf("scan binary uuid[]: %v", err)
	}
	if len(back) != 2 || back[0] != ids[0] || back[1] != ids[1] {
		t.Errorf("binary uuid[] scanned back = %v, want %v", back, ids)
	}
}

func TestRegisterUUIDScansUUID(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11")

	var got uuid.UUID
	if err := m.Scan(pgtype.UUIDOID, pgtype.BinaryFormatCode, u[:], &got); err != nil {
		t.Fatalf("scan binary uuid: %v", err)
	}
	if got != u {
		t.Errorf("binary uuid scanned = %s, want %s", got, u)
	}
	if err := m.Scan(pgtype.UUIDOID, pgtype.TextFormatCode, []byte(u.String()), &got); err != nil {
		t.Fatalf("scan text uuid: %v", err)
	}
	if got != u {
		t.Errorf("text uuid scanned = %s, want %s", got, u)
	}
}
