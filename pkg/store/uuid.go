package store

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// registerUUID makes the type map m encode a uuid.UUID as a pgtype.UUID. Without it,
// pgx (v5.13) encodes a uuid.UUID through its driver.Valuer as a string. The binary uuid
// codec rejects a string, so pgx builds an error and parses the string for each value,
// four times per change in the COPY of the audit rows. Values of parameters of other
// types, such as text, still go through the driver.Valuer.
//
// A uuid.UUID in the binary format, which COPY and parameters of type uuid use, gets a
// plan that appends its 16 bytes, because the wrap plan boxes a pgtype.UUID on the heap
// per value. The wrap plan remains for the text format and for the elements of uuid[],
// whose registered type still refers to pgx's own uuid type.
func registerUUID(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan},
		m.TryWrapEncodePlanFuncs...)
}

// uuidCodec is pgx's uuid codec with a binary encode plan for uuid.UUID.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return encodePlanUUIDBinary{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

// encodePlanUUIDBinary encodes a uuid.UUID in the binary format: its 16 bytes.
type encodePlanUUIDBinary struct{}

func (encodePlanUUIDBinary) Encode(value any, buf []byte) ([]byte, error) {
	u := value.(uuid.UUID)
	return append(buf, u[:]...), nil
}

func tryWrapUUIDEncodePlan(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	u, ok := value.(uuid.UUID)
	if !ok {
		return nil, nil, false
	}
	return &wrapUUIDEncodePlan{}, pgtype.UUID{Bytes: u, Valid: true}, true
}

// wrapUUIDEncodePlan converts a uuid.UUID to a pgtype.UUID for the next plan.
type wrapUUIDEncodePlan struct{ next pgtype.EncodePlan }

func (p *wrapUUIDEncodePlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *wrapUUIDEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(pgtype.UUID{Bytes: value.(uuid.UUID), Valid: true}, buf)
}
