package change

import (
	"crypto/sha1" //nolint:gosec // version 5 UUIDs are defined with SHA-1 (RFC 9562), not for secrecy

	"github.com/google/uuid"
)

// NameUUID returns the same version 5 UUID as uuid.NewSHA1(space, name). uuid.NewSHA1
// allocates three times per call (github.com/google/uuid v1.6), and every change derives
// its event id and sync_log id this way. NameUUID allocates nothing when the name is at
// most 48 bytes long.
func NameUUID(space uuid.UUID, name []byte) uuid.UUID {
	var buf [64]byte
	data := buf[:0]
	if len(space)+len(name) > len(buf) {
		data = make([]byte, 0, len(space)+len(name))
	}
	data = append(data, space[:]...)
	data = append(data, name...)
	sum := sha1.Sum(data) //nolint:gosec // as the import

	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}
