package notify

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// digestNamespace is the UUIDv5 namespace of digest ids.
var digestNamespace = uuid.MustParse("0b6d1f4e-3c55-4f0a-9d2b-8e7a41c0f5d3")

// Digest is the summary a destination in digest mode receives once per interval: how
// many events of each type arrived, and a sample of them in full. Its JSON form is part
// of the documented payload schema.
type Digest struct {
	Version     int               `json:"version"`
	ID          uuid.UUID         `json:"id"`
	Type        string            `json:"type"` // always "digest"
	Destination string            `json:"destination"`
	Count       int               `json:"count"`
	Counts      map[EventType]int `json:"counts"`
	FirstAt     time.Time         `json:"first_at"` // earliest occurred_at of the events
	LastAt      time.Time         `json:"last_at"`  // latest occurred_at of the events
	EventIDs    []uuid.UUID       `json:"event_ids"`
	Sample      []Event           `json:"sample"`
}

// newDigest summarizes events, which are in outbox order, for a destination. The id is
// derived from the destination and the event ids, so a retry of the same digest carries
// the same id and a receiver can drop the duplicate.
func newDigest(destination string, events []Event, sample int) *Digest {
	d := &Digest{
		Version:     SchemaVersion,
		Type:        digestType,
		Destination: destination,
		Count:       len(events),
		Counts:      map[EventType]int{},
		EventIDs:    make([]uuid.UUID, len(events)),
		Sample:      events[:min(sample, len(events))],
	}

	var key strings.Builder
	key.WriteString(destination)
	for i := range events {
		ev := &events[i]
		d.Counts[ev.Type]++
		d.EventIDs[i] = ev.ID
		key.WriteString("/" + ev.ID.String())
		if d.FirstAt.IsZero() || ev.OccurredAt.Before(d.FirstAt) {
			d.FirstAt = ev.OccurredAt
		}
		if ev.OccurredAt.After(d.LastAt) {
			d.LastAt = ev.OccurredAt
		}
	}
	d.ID = uuid.NewSHA1(digestNamespace, []byte(key.String()))
	d.Sample = slices.Clone(d.Sample)
	return d
}
