package capture

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
)

func TestConfirmMovesSlot(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	initial := f.slotConfirmed()
	s := startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	f.exec(`INSERT INTO public.items VALUES (2, 'b', 2)`)
	first, second := s.next(), s.next()

	time.Sleep(5 * f.cfg.StatusInterval)
	if got := f.slotConfirmed(); got != initial {
		t.Errorf("confirmed_flush_lsn = %s before any Confirm, want the initial %s", got, initial)
	}

	r.Confirm(first.EndLSN)
	waitFor(t, "the slot to confirm the first transaction", func() bool {
		return f.slotConfirmed() == first.EndLSN
	})
	time.Sleep(5 * f.cfg.StatusInterval)
	if got := f.slotConfirmed(); got != first.EndLSN {
		t.Errorf("confirmed_flush_lsn = %s, want %s: nothing beyond the confirmed position",
			got, first.EndLSN)
	}

	stats := r.Stats()
	if stats.Confirmed != first.EndLSN {
		t.Errorf("Stats().Confirmed = %s, want %s", stats.Confirmed, first.EndLSN)
	}
	if stats.Received < second.EndLSN || stats.ServerWALEnd == 0 {
		t.Errorf("Stats() = %+v, want received at least %s and a server WAL end", stats, second.EndLSN)
	}
}

func TestConfirmIgnoresLowerPosition(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.reader()

	r.Confirm(200)
	r.Confirm(100)
	if got := r.Stats().Confirmed; got != 200 {
		t.Errorf("Confirmed = %d after Confirm(200), Confirm(100); want 200", got)
	}
}

func TestStreamReconnects(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	s := startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	if got := s.next().Events[0].New[0].Text; got != "1" {
		t.Fatalf("first id = %s, want 1", got)
	}

	f.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		WHERE slot_name = 'cs_slot'`)
	f.exec(`INSERT INTO public.items VALUES (2, 'b', 2)`)
	f.exec(`INSERT INTO public.items VALUES (3, 'c', 3)`)

	// The first transaction was never confirmed, so the server sends it again; Stream
	// must not deliver it twice.
	for _, want := range []string{"2", "3"} {
		if got := s.next().Events[0].New[0].Text; got != want {
			t.Errorf("id after reconnect = %s, want %s", got, want)
		}
	}
	s.expectNone(500 * time.Millisecond)
	if f.logs.count("reconnecting") == 0 {
		t.Error("no reconnecting log record, want one")
	}
	if f.logs.count("INFO connected") < 2 {
		t.Errorf("connected log records = %d, want at least 2", f.logs.count("INFO connected"))
	}
}

func TestStreamKeepsConnectionWhileOutIsFull(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.cfg.URL = f.url + "&options=-c%20wal_sender_timeout%3D1s"
	r := f.setup()
	s := startStream(t, r, 0, 0)

	for _, sql := range []string{
		`INSERT INTO public.items VALUES (1, 'a', 1)`,
		`INSERT INTO public.items VALUES (2, 'b', 2)`,
		`INSERT INTO public.items VALUES (3, 'c', 3)`,
	} {
		f.exec(sql)
	}
	time.Sleep(4 * time.Second) // four times wal_sender_timeout while no one reads out

	for _, want := range []string{"1", "2", "3"} {
		if got := s.next().Events[0].New[0].Text; got != want {
			t.Errorf("id = %s, want %s", got, want)
		}
	}
	if n := f.logs.count("reconnecting"); n != 0 {
		t.Errorf("reconnected %d times while out was full, want 0: %v", n, f.logs.records)
	}
}

func TestStreamSlotMissingAtStart(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	f.exec(`SELECT pg_drop_replication_slot('cs_slot')`)

	err := r.Stream(f.ctx(), 0, make(chan *change.Tx))
	if !isPermanent(err, ErrSlotMissing) {
		t.Fatalf("Stream = %v, want ErrSlotMissing", err)
	}
	t.Log(err)
}

func TestStreamSlotDroppedMidStream(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	s := startStream(t, f.setup(), 0, 16)
	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	s.next()

	// The walsender must end before the slot can be dropped, and Stream reconnects
	// quickly, so retry until the drop wins.
	waitFor(t, "the slot to be dropped", func() bool {
		_, _ = f.conn.Exec(f.ctx(), `SELECT pg_terminate_backend(active_pid)
			FROM pg_replication_slots WHERE slot_name = 'cs_slot'`)
		_, err := f.conn.Exec(f.ctx(), `SELECT pg_drop_replication_slot('cs_slot')`)
		return err == nil
	})

	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatal("Stream did not return after the slot was dropped")
	}
	if !isPermanent(s.err, ErrSlotMissing) {
		t.Errorf("Stream = %v, want ErrSlotMissing", s.err)
	}
}

func TestStreamPublicationMissing(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	f.exec(`DROP PUBLICATION cs_pub`)

	err := r.Stream(f.ctx(), 0, make(chan *change.Tx))
	if !isPermanent(err, ErrPublicationMissing) {
		t.Fatalf("Stream = %v, want ErrPublicationMissing", err)
	}
}

func TestStreamPublicationDroppedMidStream(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	s := startStream(t, f.setup(), 0, 16)
	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	s.next()

	f.exec(`DROP PUBLICATION cs_pub`)
	f.exec(`INSERT INTO public.items VALUES (2, 'b', 2)`)
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatal("Stream did not return after the publication was dropped")
	}
	if !isPermanent(s.err, ErrPublicationMissing) {
		t.Errorf("Stream = %v, want ErrPublicationMissing", s.err)
	}
}

func TestStreamUnknownRole(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.setup()
	u, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("no_such_role")
	f.cfg.URL = u.String()

	err = f.reader().Stream(f.ctx(), 0, make(chan *change.Tx))
	if !isPermanent(err, ErrAuthentication) {
		t.Fatalf("Stream = %v, want ErrAuthentication", err)
	}
}

func TestStreamRoleWithoutReplication(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.setup()
	role := pgtest.DatabaseName("plain_role")
	f.exec(`CREATE ROLE ` + role + ` LOGIN`)
	t.Cleanup(func() { f.exec("DROP ROLE IF EXISTS " + role) })
	u, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	f.cfg.URL = u.String()

	err = f.reader().Stream(f.ctx(), 0, make(chan *change.Tx))
	if !isPermanent(err, ErrPermission) {
		t.Fatalf("Stream = %v, want ErrPermission", err)
	}
}

func TestStreamSlotLost(t *testing.T) {
	if os.Getenv(pgtest.EnvURL) != "" {
		t.Skip("changes server settings, so it runs only on a throwaway cluster")
	}
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()

	f.exec(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`)
	f.exec(`SELECT pg_reload_conf()`)
	t.Cleanup(func() {
		f.exec(`ALTER SYSTEM RESET max_slot_wal_keep_size`)
		f.exec(`SELECT pg_reload_conf()`)
	})
	f.exec(`CREATE TABLE public.junk (v text)`)
	waitFor(t, "the slot to be invalidated", func() bool {
		f.exec(`INSERT INTO public.junk VALUES ('x')`)
		f.exec(`SELECT pg_switch_wal()`)
		f.exec(`CHECKPOINT`)
		return f.count(`SELECT count(*) FROM pg_replication_slots
			WHERE slot_name = 'cs_slot' AND wal_status = 'lost'`) == 1
	})

	err := r.Stream(f.ctx(), 0, make(chan *change.Tx))
	if !isPermanent(err, ErrSlotLost) {
		t.Fatalf("Stream = %v, want ErrSlotLost", err)
	}
}

func TestStreamPublicationRecreatedAfterSlot(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	f.exec(`DROP PUBLICATION cs_pub`)
	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	f.exec(`CREATE PUBLICATION cs_pub FOR TABLE public.items`)

	err := r.Stream(f.ctx(), 0, make(chan *change.Tx, 4))
	if !isPermanent(err, ErrPublicationMissing) {
		t.Fatalf("Stream = %v, want ErrPublicationMissing", err)
	}
	if !strings.Contains(err.Error(), "changesync teardown") {
		t.Errorf("error %q does not say to recreate the slot", err)
	}
}
