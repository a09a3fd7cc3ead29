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
func registerUUID(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan},
		m.TryWrapEncodePlanFuncs...)
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
