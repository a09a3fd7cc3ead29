package capture

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasense/changesync/pkg/change"
)

const itemsTable = `CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int);`

func TestStreamRowEvents(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	s := startStream(t, f.setup(), 0, 16)

	tests := []struct {
		name        string
		sql         string
		op          change.Op
		wantOld     []string
		wantKeyOnly bool
		wantNew     []string
	}{
		{
			"insert", `INSERT INTO public.items VALUES (1, 'apple', 3)`,
			change.OpInsert, nil, false,
			[]string{"1", "apple", "3"},
		},
		{
			"insert null", `INSERT INTO public.items VALUES (2, NULL, 0)`,
			change.OpInsert, nil, false,
			[]string{"2", "<null>", "0"},
		},
		{
			"update keeps key", `UPDATE public.items SET qty = 4 WHERE id = 1`,
			change.OpUpdate, nil, false,
			[]string{"1", "apple", "4"},
		},
		{
			"update changes key", `UPDATE public.items SET id = 10 WHERE id = 1`,
			change.OpUpdate,
			[]string{"1", "<absent>", "<absent>"},
			true,
			[]string{"10", "apple", "4"},
		},
		{
			"delete", `DELETE FROM public.items WHERE id = 2`,
			change.OpDelete,
			[]string{"2", "<absent>", "<absent>"},
			true, nil,
		},
		{
			"empty string is text", `INSERT INTO public.items VALUES (3, '', NULL)`,
			change.OpInsert, nil, false,
			[]string{"3", "", "<null>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.exec(tt.sql)
			tx := s.next()
			if len(tx.Events) != 1 {
				t.Fatalf("events = %d, want 1", len(tx.Events))
			}
			ev := tx.Events[0]
			if ev.Op != tt.op {
				t.Errorf("op = %s, want %s", ev.Op, tt.op)
			}
			if got := values(ev.Old); !slices.Equal(got, tt.wantOld) {
				t.Errorf("old = %q, want %q", got, tt.wantOld)
			}
			if ev.OldKeyOnly != tt.wantKeyOnly {
				t.Errorf("OldKeyOnly = %v, want %v", ev.OldKeyOnly, tt.wantKeyOnly)
			}
			if got := values(ev.New); !slices.Equal(got, tt.wantNew) {
				t.Errorf("new = %q, want %q", got, tt.wantNew)
			}
			if ev.Relation.Table.String() != "public.items" {
				t.Errorf("relation = %s, want public.items", ev.Relation.Table)
			}
		})
	}
}

func TestStreamReplicaIdentityFull(t *testing.T) {
	f := newFixture(t, itemsTable+`ALTER TABLE public.items REPLICA IDENTITY FULL;
		INSERT INTO public.items VALUES (1, 'apple', 3);`, "public.items")
	s := startStream(t, f.setup(), 0, 16)

	f.exec(`UPDATE public.items SET qty = 5 WHERE id = 1`)
	ev := s.next().Events[0]
	if got := values(ev.Old); !slices.Equal(got, []string{"1", "apple", "3"}) {
		t.Errorf("update old = %q, want the full old row", got)
	}
	if ev.OldKeyOnly {
		t.Error("update OldKeyOnly = true, want false under FULL")
	}
	if ev.Relation.ReplicaIdentity != 'f' {
		t.Errorf("replica identity = %q, want 'f'", ev.Relation.ReplicaIdentity)
	}

	f.exec(`DELETE FROM public.items WHERE id = 1`)
	ev = s.next().Events[0]
	if got := values(ev.Old); !slices.Equal(got, []string{"1", "apple", "5"}) {
		t.Errorf("delete old = %q, want the full old row", got)
	}
	if ev.OldKeyOnly {
		t.Error("delete OldKeyOnly = true, want false under FULL")
	}
}

func TestStreamTransactionMetadata(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	s := startStream(t, f.setup(), 0, 16)

	f.exec(`BEGIN; INSERT INTO public.items VALUES (1, 'a', 1);
		INSERT INTO public.items VALUES (2, 'b', 2); UPDATE public.items SET qty = 9 WHERE id = 1;
		COMMIT`)
	tx := s.next()

	if len(tx.Events) != 3 {
		t.Fatalf("events = %d, want 3", len(tx.Events))
	}
	if tx.Xid == 0 || tx.CommitLSN == 0 || tx.EndLSN <= tx.CommitLSN {
		t.Errorf("xid %d, commit %s, end %s: want all set and end after commit",
			tx.Xid, tx.CommitLSN, tx.EndLSN)
	}
	if tx.BeginLSN != tx.CommitLSN {
		t.Errorf("BeginLSN %s, want the commit LSN %s that Begin announces", tx.BeginLSN, tx.CommitLSN)
	}
	if since := time.Since(tx.CommitTime); since < 0 || since > time.Minute {
		t.Errorf("commit time %s is not recent", tx.CommitTime)
	}
	if tx.ThreadID != change.ThreadID("cs_slot", tx.CommitLSN) {
		t.Error("thread id is not derived from slot and commit LSN")
	}
	for i, ev := range tx.Events {
		if ev.Seq != i || ev.ThreadID != tx.ThreadID || ev.ID != change.EventID(tx.ThreadID, i) {
			t.Errorf("event %d: seq %d, thread %s, id %s: not stamped", i, ev.Seq, ev.ThreadID, ev.ID)
		}
	}
}

func TestStreamTruncate(t *testing.T) {
	f := newFixture(t, itemsTable+`CREATE TABLE public.other (id int PRIMARY KEY);
		CREATE TABLE public.unlisted (id int PRIMARY KEY);`, "public.items", "public.other")
	r := f.setup()
	f.exec(`ALTER PUBLICATION cs_pub ADD TABLE public.unlisted`)
	s := startStream(t, r, 0, 16)

	f.exec(`TRUNCATE public.items, public.other, public.unlisted RESTART IDENTITY CASCADE`)
	tx := s.next()
	if len(tx.Events) != 2 {
		t.Fatalf("events = %d, want one truncate event per configured table", len(tx.Events))
	}
	for i, want := range []string{"public.items", "public.other"} {
		ev := tx.Events[i]
		if ev.Op != change.OpTruncate {
			t.Errorf("event %d: op = %s, want truncate", i, ev.Op)
		}
		if got := ev.Relation.Table.String(); got != want {
			t.Errorf("event %d: relation %s, want %s", i, got, want)
		}
		var names []string
		for _, rel := range ev.Truncated {
			names = append(names, rel.Table.String())
		}
		if !slices.Equal(names, []string{"public.items", "public.other"}) {
			t.Errorf("event %d: truncated = %v, want the two configured tables", i, names)
		}
		if !ev.TruncateCascade || !ev.TruncateRestart {
			t.Errorf("event %d: cascade %v, restart %v; want both", i, ev.TruncateCascade, ev.TruncateRestart)
		}
	}
}

func TestStreamSendsTransactionsWithoutEvents(t *testing.T) {
	f := newFixture(t, itemsTable+`CREATE TABLE public.unlisted (id int PRIMARY KEY);`, "public.items")
	r := f.setup()
	f.exec(`ALTER PUBLICATION cs_pub ADD TABLE public.unlisted`)
	s := startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.unlisted VALUES (1)`)
	tx := s.nextAny()
	if len(tx.Events) != 0 {
		t.Errorf("events = %d, want 0 for a table that is not configured", len(tx.Events))
	}
	if tx.EndLSN == 0 {
		t.Error("EndLSN = 0, want the commit end so the checkpoint can move")
	}
}

func TestStreamUnchangedToast(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.docs (id int PRIMARY KEY, title text, body text);
		ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL;`, "public.docs")
	s := startStream(t, f.setup(), 0, 16)
	big := strings.Repeat("x", 5000)

	f.exec(`INSERT INTO public.docs VALUES (1, 't', repeat('x', 5000))`)
	if got := s.next().Events[0].New[2]; got.Kind != change.Text || got.Text != big {
		t.Errorf("inserted body kind %d, %d bytes; want the full text", got.Kind, len(got.Text))
	}

	f.exec(`UPDATE public.docs SET title = 'u' WHERE id = 1`)
	ev := s.next().Events[0]
	if got := values(ev.New)[:2]; !slices.Equal(got, []string{"1", "u"}) {
		t.Errorf("new id, title = %q", got)
	}
	if ev.New[2].Kind != change.Unchanged {
		t.Errorf("body kind = %d, want Unchanged", ev.New[2].Kind)
	}
}

func TestStreamRelationChangeMidStream(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	s := startStream(t, f.setup(), 0, 16)

	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	first := s.next().Events[0]
	f.exec(`ALTER TABLE public.items ADD COLUMN note text;
		INSERT INTO public.items VALUES (2, 'b', 2, 'hello')`)
	second := s.next().Events[0]

	if len(first.Relation.Columns) != 3 {
		t.Errorf("first event relation has %d columns, want 3 as when it was decoded",
			len(first.Relation.Columns))
	}
	if len(second.Relation.Columns) != 4 || second.Relation.Columns[3].Name != "note" {
		t.Errorf("second event relation columns = %v, want note added", second.Relation.Columns)
	}
	if got := values(second.New); !slices.Equal(got, []string{"2", "b", "2", "hello"}) {
		t.Errorf("second event new = %q", got)
	}
}

func TestStreamColumnMetadata(t *testing.T) {
	f := newFixture(t, `CREATE TYPE public.mood AS ENUM ('sad', 'happy');
		CREATE TABLE public.m (id int8, tag varchar(12), feeling public.mood, pos pg_lsn, cash money,
			PRIMARY KEY (id, tag));`, "public.m")
	s := startStream(t, f.setup(), 0, 16)

	f.exec(`INSERT INTO public.m VALUES (1, 'x', 'happy', '0/16', 1.5)`)
	rel := s.next().Events[0].Relation

	want := []struct {
		name, typeName string
		key            bool
	}{
		{"id", "int8", true},
		{"tag", "varchar", true},
		{"feeling", "public.mood", false},
		{"pos", "pg_catalog.pg_lsn", false},
		{"cash", "pg_catalog.money", false},
	}
	if len(rel.Columns) != len(want) {
		t.Fatalf("columns = %v", rel.Columns)
	}
	for i, w := range want {
		c := rel.Columns[i]
		if c.Name != w.name || c.TypeName != w.typeName || c.Key != w.key {
			t.Errorf("column %d = %s %s key=%v, want %s %s key=%v",
				i, c.Name, c.TypeName, c.Key, w.name, w.typeName, w.key)
		}
	}
	if rel.Columns[1].TypeMod != 12+4 {
		t.Errorf("varchar(12) type modifier = %d, want 16", rel.Columns[1].TypeMod)
	}
}

func TestStreamContextMessage(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	s := startStream(t, f.setup(), 0, 16)

	f.exec(`BEGIN; INSERT INTO public.items VALUES (1, 'a', 1);
		SELECT pg_logical_emit_message(true, 'changesync', '{"user": "alice", "thread_id": "t-1"}');
		SELECT pg_logical_emit_message(true, 'other', '{"user": "mallory"}');
		COMMIT`)
	tx := s.next()
	if tx.Actor != "alice" || tx.ContextThreadID != "t-1" {
		t.Errorf("actor %q, context thread %q; want alice, t-1", tx.Actor, tx.ContextThreadID)
	}

	f.exec(`BEGIN; INSERT INTO public.items VALUES (2, 'b', 2);
		SELECT pg_logical_emit_message(true, 'changesync', '{not json');
		COMMIT`)
	tx = s.next()
	if tx.Actor != "" {
		t.Errorf("actor = %q after malformed context, want empty", tx.Actor)
	}
	if n := f.logs.count("WARN ignoring malformed context message"); n != 1 {
		t.Errorf("malformed context warnings = %d, want 1", n)
	}

	f.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'changesync', '{"user": "bob"}'); COMMIT`)
	tx = s.nextAny()
	if tx.Actor != "bob" || len(tx.Events) != 0 {
		t.Errorf("message-only transaction: actor %q, %d events; want bob, 0", tx.Actor, len(tx.Events))
	}
}

func TestStreamThreadIDsDeterministic(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	f.exec(`INSERT INTO public.items VALUES (2, 'b', 2)`)

	read := func() []*change.Tx {
		s := startStream(t, r, 0, 16)
		txs := []*change.Tx{s.next(), s.next()}
		if err := s.stop(); err != nil {
			t.Fatalf("Stream: %v", err)
		}
		return txs
	}
	first, second := read(), read()

	for i := range first {
		if first[i].ThreadID != second[i].ThreadID {
			t.Errorf("tx %d thread id %s then %s, want equal", i, first[i].ThreadID, second[i].ThreadID)
		}
		if first[i].Events[0].ID != second[i].Events[0].ID {
			t.Errorf("tx %d event id differs between replays", i)
		}
	}
	if first[0].ThreadID == first[1].ThreadID {
		t.Error("two transactions share a thread id")
	}
}

func TestStreamSkipsBelowStart(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	r := f.setup()
	f.exec(`INSERT INTO public.items VALUES (1, 'a', 1)`)
	f.exec(`INSERT INTO public.items VALUES (2, 'b', 2)`)

	s := startStream(t, r, 0, 16)
	firstTx := s.next()
	s.next()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// The slot confirmed nothing, so the server sends both again; the first is skipped.
	s = startStream(t, r, firstTx.EndLSN, 16)
	if got := s.next().Events[0].New[0].Text; got != "2" {
		t.Errorf("first transaction after start has id %s, want 2", got)
	}
}

func TestStreamSessionSettings(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.s (id int PRIMARY KEY, ts timestamptz, d date,
		iv interval, f8 float8, f4 float4, raw bytea);`, "public.s")
	f.exec(`DO $$ BEGIN
		EXECUTE format('ALTER DATABASE %I SET DateStyle = ''SQL, DMY''', current_database());
		EXECUTE format('ALTER DATABASE %I SET extra_float_digits = 0', current_database());
		EXECUTE format('ALTER DATABASE %I SET bytea_output = escape', current_database());
		EXECUTE format('ALTER DATABASE %I SET TimeZone = ''Asia/Kathmandu''', current_database());
		EXECUTE format('ALTER DATABASE %I SET IntervalStyle = sql_standard', current_database());
		END $$`)
	s := startStream(t, f.setup(), 0, 16)

	writer := connect(t, f.url) // a new session, so it runs with the hostile defaults
	if _, err := writer.Exec(f.ctx(), `INSERT INTO public.s VALUES (1, '2024-01-02 03:04:05.25+00',
		'2024-01-02', '1 day 02:03:04', 1.0000000000000002, 0.1, '\x01ff')`); err != nil {
		t.Fatal(err)
	}
	got := values(s.next().Events[0].New)

	want := []string{
		"1", "2024-01-02 03:04:05.25+00", "2024-01-02", "1 day 02:03:04",
		"1.0000000000000002", "0.1", `\x01ff`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestHostileDefaultsApplyToSessions(t *testing.T) {
	// The hostile defaults must really change the text format for a normal session,
	// or TestStreamSessionSettings would pass without the pinned settings.
	f := newFixture(t, "")
	f.exec(`DO $$ BEGIN
		EXECUTE format('ALTER DATABASE %I SET DateStyle = ''SQL, DMY''', current_database());
		EXECUTE format('ALTER DATABASE %I SET extra_float_digits = 0', current_database());
		END $$`)
	conn := connect(t, f.url)
	var d, fl string
	query := `SELECT '2024-01-02'::date::text, 1.0000000000000002::float8::text`
	if err := conn.QueryRow(f.ctx(), query).Scan(&d, &fl); err != nil {
		t.Fatal(err)
	}
	if d == "2024-01-02" || fl == "1.0000000000000002" {
		t.Errorf("normal session shows %q and %q: the database defaults did not apply", d, fl)
	}
}

func TestStreamLargeTransactionInParts(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.cfg.PartEvents = 3
	r := f.setup()
	s := startStream(t, r, 0, 16)

	f.exec(`INSERT INTO public.items SELECT g, 'n', g FROM generate_series(1, 7) g`)
	var parts []*change.Tx
	for {
		tx := s.next()
		parts = append(parts, tx)
		if !tx.More {
			break
		}
	}
	if len(parts) != 3 {
		t.Fatalf("parts = %d, want 3 (3, 3 and 1 events)", len(parts))
	}
	final := parts[2]
	if final.EndLSN == 0 {
		t.Error("the last part has no EndLSN")
	}
	seq := 0
	for i, part := range parts {
		if part.CommitLSN != final.CommitLSN || part.ThreadID != final.ThreadID {
			t.Errorf("part %d: commit %s thread %s, want %s %s", i, part.CommitLSN, part.ThreadID,
				final.CommitLSN, final.ThreadID)
		}
		if part.FirstSeq != seq {
			t.Errorf("part %d: FirstSeq %d, want %d", i, part.FirstSeq, seq)
		}
		for _, ev := range part.Events {
			if ev.Seq != seq || ev.ID != change.EventID(final.ThreadID, seq) {
				t.Errorf("part %d: event seq %d id %s, want seq %d", i, ev.Seq, ev.ID, seq)
			}
			seq++
		}
	}
	if seq != 7 {
		t.Errorf("events = %d, want 7", seq)
	}
}

// streamingURL lowers logical_decoding_work_mem to its minimum for the replication
// connection, so that the server streams every transaction above 64kB in progress.
func streamingURL(url string) string {
	return url + "&options=-c%20logical_decoding_work_mem%3D64kB"
}

// streamCount returns how many times the server streamed part of a transaction in
// progress through the fixture's slot.
func (f *fixture) streamCount() int64 {
	f.t.Helper()
	var n int64
	err := f.conn.QueryRow(f.ctx(), `SELECT coalesce(max(stream_count), 0)
		FROM pg_stat_replication_slots WHERE slot_name = $1`, f.cfg.Slot).Scan(&n)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// openTx runs sql in a transaction on a connection of its own and leaves the transaction
// open until the test runs the returned function with COMMIT or ROLLBACK.
func (f *fixture) openTx(sql string) func(end string) {
	f.t.Helper()
	conn := connect(f.t, f.url)
	if _, err := conn.PgConn().Exec(f.ctx(), "BEGIN;"+sql).ReadAll(); err != nil {
		f.t.Fatalf("exec %q: %v", sql, err)
	}
	return func(end string) {
		f.t.Helper()
		if _, err := conn.Exec(f.ctx(), end); err != nil {
			f.t.Fatalf("%s: %v", end, err)
		}
	}
}

// collect receives the parts of the next transaction with events and returns them in
// one Tx, checking that the parts follow each other without a gap or a repeat.
func (s *stream) collect() *change.Tx {
	s.t.Helper()
	whole := s.next()
	whole.Events = slices.Clone(whole.Events)
	for part := whole; part.More; {
		part = s.nextAny()
		if part.CommitLSN != whole.CommitLSN || part.FirstSeq != len(whole.Events) {
			s.t.Fatalf("part of %s at change %d after %d changes of %s", part.CommitLSN,
				part.FirstSeq, len(whole.Events), whole.CommitLSN)
		}
		whole.Events = append(whole.Events, part.Events...)
		whole.More, whole.EndLSN = part.More, part.EndLSN
	}
	return whole
}

func TestStreamTransactionsInProgress(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.cfg.URL = streamingURL(f.url)
	r := f.setup()
	s := startStream(t, r, 0, 64)

	// The large transaction rolls back a savepoint after the server streamed its
	// changes, and stays open while a small one commits.
	endLarge := f.openTx(`INSERT INTO public.items SELECT g, repeat('x', 100), g
			FROM generate_series(1, 3000) g;
		SAVEPOINT s1;
		UPDATE public.items SET name = 'rolled back' WHERE id <= 1000;
		ROLLBACK TO SAVEPOINT s1;
		UPDATE public.items SET qty = -qty WHERE id <= 10`)
	waitFor(t, "the server to stream the open transaction", func() bool { return f.streamCount() > 0 })
	f.exec(`INSERT INTO public.items VALUES (100000, 'small', 1)`)
	if got := s.next().Events[0].New[0].Text; got != "100000" {
		t.Fatalf("first transaction inserts id %s, want 100000, which commits first", got)
	}

	waitFor(t, "the open transaction in a spill file", func() bool {
		st := r.Stats()
		return st.StreamedOpen == 1 && st.SpillBytes > 0
	})

	streamed := f.streamCount()
	endAborted := f.openTx(`INSERT INTO public.items SELECT g, 'aborted', g
		FROM generate_series(200001, 203000) g`)
	waitFor(t, "the server to stream the aborted transaction", func() bool { return f.streamCount() > streamed })
	endAborted("ROLLBACK")
	endLarge("COMMIT")

	large := s.collect()
	if len(large.Events) != 3010 {
		t.Fatalf("large transaction has %d changes, want 3000 inserts and 10 updates", len(large.Events))
	}
	for i, ev := range large.Events {
		wantOp, wantID := change.OpInsert, strconv.Itoa(i+1)
		if i >= 3000 {
			wantOp, wantID = change.OpUpdate, strconv.Itoa(i-2999)
		}
		if ev.Op != wantOp || ev.New[0].Text != wantID || ev.New[1].Text == "rolled back" {
			t.Fatalf("change %d: %s %q, want %s of id %s", i, ev.Op, values(ev.New), wantOp, wantID)
		}
	}
	f.exec(`INSERT INTO public.items VALUES (100001, 'after', 1)`)
	if got := s.next().Events[0].New[0].Text; got != "100001" {
		t.Errorf("transaction after the large one inserts id %s, want 100001: the aborted "+
			"transaction must not arrive", got)
	}
	if st := r.Stats(); st.StreamedOpen != 0 || st.SpillBytes != 0 {
		t.Errorf("after both ended: %d open streamed transactions with %d spilled bytes, want 0 and 0",
			st.StreamedOpen, st.SpillBytes)
	}
}

func TestStreamTransactionInProgressAcrossReconnect(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.cfg.URL = streamingURL(f.url)
	s := startStream(t, f.setup(), 0, 64)

	end := f.openTx(`INSERT INTO public.items SELECT g, repeat('y', 100), g
		FROM generate_series(1, 2000) g`)
	waitFor(t, "the server to stream the open transaction", func() bool { return f.streamCount() > 0 })
	f.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		WHERE slot_name = 'cs_slot'`)
	end("COMMIT")

	// The new connection streams the transaction again from its start; what the first
	// one streamed is dropped with its session.
	tx := s.collect()
	if len(tx.Events) != 2000 {
		t.Fatalf("transaction has %d changes, want 2000", len(tx.Events))
	}
	for i, ev := range tx.Events {
		if ev.New[0].Text != strconv.Itoa(i+1) {
			t.Fatalf("change %d inserts id %s, want %d", i, ev.New[0].Text, i+1)
		}
	}
	s.expectNone(500 * time.Millisecond)
	if f.logs.count("reconnecting") == 0 {
		t.Error("no reconnecting log record: the walsender was not ended mid-stream")
	}
}

func TestStreamWithStreamingDisabled(t *testing.T) {
	f := newFixture(t, itemsTable, "public.items")
	f.cfg.URL = streamingURL(f.url)
	f.cfg.DisableStreaming = true
	s := startStream(t, f.setup(), 0, 64)

	f.exec(`INSERT INTO public.items SELECT g, repeat('z', 100), g FROM generate_series(1, 2000) g`)
	if tx := s.collect(); len(tx.Events) != 2000 {
		t.Fatalf("transaction has %d changes, want 2000", len(tx.Events))
	}
	if n := f.streamCount(); n != 0 {
		t.Errorf("server streamed %d times with streaming disabled, want 0", n)
	}
}
