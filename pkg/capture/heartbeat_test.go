package capture

import (
	"testing"
	"time"
)

const noiseTables = itemsTable + `CREATE TABLE public.noise (id serial PRIMARY KEY, v text);`

func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	f := newFixture(t, noiseTables, "public.items")
	f.cfg.Heartbeat = 200 * time.Millisecond
	r := f.setup()
	initial := f.slotConfirmed()
	startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.noise (v) VALUES ('unpublished')`)
	written := f.queryLSN(`SELECT pg_current_wal_lsn()::text`)

	waitFor(t, "the slot to advance past unpublished writes", func() bool {
		return f.slotConfirmed() >= written
	})
	if got := r.Stats().Confirmed; got <= initial {
		t.Errorf("Stats().Confirmed = %s, want beyond the initial %s", got, initial)
	}
}

func TestHeartbeatWaitsForConfirm(t *testing.T) {
	f := newFixture(t, noiseTables, "public.items")
	f.cfg.Heartbeat = 200 * time.Millisecond
	r := f.setup()
	initial := f.slotConfirmed()
	s := startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	tx := s.next()
	f.exec(`INSERT INTO public.noise (v) VALUES ('unpublished')`)

	time.Sleep(8 * f.cfg.Heartbeat)
	if got := f.slotConfirmed(); got != initial {
		t.Fatalf("confirmed_flush_lsn = %s with a transaction in flight, want the initial %s",
			got, initial)
	}

	r.Confirm(tx.EndLSN)
	written := f.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	waitFor(t, "the slot to advance past the confirmed transaction", func() bool {
		return f.slotConfirmed() >= written
	})
}

func TestHeartbeatOffKeepsSlot(t *testing.T) {
	f := newFixture(t, noiseTables, "public.items")
	r := f.setup()
	initial := f.slotConfirmed()
	startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.noise (v) VALUES ('unpublished')`)
	time.Sleep(10 * f.cfg.StatusInterval)
	if got := f.slotConfirmed(); got != initial {
		t.Errorf("confirmed_flush_lsn = %s without heartbeats or Confirm, want the initial %s",
			got, initial)
	}
}
