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
	if _, ok := plan.(*wrapUUIDEncodePlan); !ok {
		t.Errorf("encode plan = %T, want *wrapUUIDEncodePlan", plan)
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
