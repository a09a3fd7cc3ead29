package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/store"
)

// Shape of the audit trail that the API benchmark generates. Every row key belongs to one
// of apiTables tables, and the changes are spread evenly over the apiRowKeys row keys.
const (
	apiDatabase = "api"
	apiTables   = 20
	apiRowKeys  = 50000
	apiPageSize = 50
)

// fillAudit is the SQL that writes the audit trail, formatted with the number of changes,
// of row keys and of tables. The changes are one second apart. One in 1,000 is held and one
// in 250 rejected, and the rest are synced and have a sync_log row. One in ten has one of
// 100 actors. Nine in 100 are inserts, one in 100 a delete and the rest updates.
const fillAudit = `
INSERT INTO change_events (id, pipeline, thread_id, seq, row_key, table_name, target_table,
    change_type, old_data, new_data, detected_at, status, decision_reason, decided_by, actor,
    source_lsn, xid, commit_time)
SELECT md5('change' || g)::uuid, 'bench', md5('thread' || g / 4)::uuid, g %% 4,
    (g %% %[2]d)::text, 'public.t' || g %% %[3]d, 'public.t' || g %% %[3]d,
    CASE WHEN g %% 100 = 0 THEN 'delete' WHEN g %% 10 = 0 THEN 'insert' ELSE 'update' END::change_type,
    jsonb_build_object('id', (g %% %[2]d)::text, 'v', (g - 1)::text),
    jsonb_build_object('id', (g %% %[2]d)::text, 'v', g::text),
    timestamptz '2026-01-01 00:00:00Z' + g * interval '1 second',
    CASE WHEN g %% 1000 = 0 THEN 'held' WHEN g %% 200 = 0 THEN 'rejected' ELSE 'synced' END::change_status,
    'rule matched', 'rule:bench', CASE WHEN g %% 10 = 3 THEN 'user' || g %% 100 END,
    g, g, timestamptz '2026-01-01 00:00:00Z' + g * interval '1 second'
FROM generate_series(1, %[1]d) g;

INSERT INTO sync_log (change_event_id, source_table, target_table, source_id, target_key, diff,
    synced_at, performed_by, op)
SELECT id, table_name, target_table, row_key, jsonb_build_array(row_key),
    jsonb_build_object('v', jsonb_build_object('old', old_data -> 'v', 'new', new_data -> 'v')),
    detected_at + interval '10 milliseconds', decided_by, change_type
FROM change_events WHERE status = 'synced';
`

// apiEndpoint is one request shape whose latency the API benchmark measures.
type apiEndpoint struct {
	name string
	path func(i int) string
}

// apiLatency is the measured latency of one endpoint, in milliseconds.
type apiLatency struct {
	name    string
	samples []float64
}

// apiBench is the database and the in-process API server of the API benchmark.
type apiBench struct {
	base   string
	client *http.Client
	conn   *pgx.Conn
}

// runAPIBenchmark fills a database with the audit trail of b.opts.apiRows changes, serves
// the API on it in-process and measures the latency of its read endpoints.
func (b *bench) runAPIBenchmark(ctx context.Context) ([]apiLatency, error) {
	dbURL, err := b.createAPIDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := b.cluster.DropDatabase(context.Background(), apiDatabase); err != nil {
			fmt.Fprintf(os.Stderr, "csbench: drop database %s: %v\n", apiDatabase, err)
		}
	}()

	st, err := store.Open(ctx, dbURL, store.DefaultSchema)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	srv, err := api.New(api.Config{Cfg: &config.Config{API: config.API{Listen: "127.0.0.1:0"}}, Store: st})
	if err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen for the API: %w", err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			fmt.Fprintf(os.Stderr, "csbench: API server: %v\n", err)
		}
	}()

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	ab := &apiBench{base: "http://" + ln.Addr().String(), client: &http.Client{Timeout: time.Minute}, conn: conn}
	endpoints, err := ab.endpoints(ctx, b.opts.apiRows, b.opts.apiRequests)
	if err != nil {
		return nil, err
	}

	results := make([]apiLatency, 0, len(endpoints))
	for _, ep := range endpoints {
		fmt.Fprintf(os.Stderr, "csbench: API %s\n", ep.name)
		samples, err := ab.measure(ctx, ep, b.opts.apiRequests)
		if err != nil {
			return nil, fmt.Errorf("API %s: %w", ep.name, err)
		}
		results = append(results, apiLatency{name: ep.name, samples: samples})
	}
	return results, nil
}

// createAPIDatabase creates the benchmark database with the metadata schema, the audit
// trail and the target tables the diffs read, and returns its URL.
func (b *bench) createAPIDatabase(ctx context.Context) (string, error) {
	fmt.Fprintf(os.Stderr, "csbench: API: fill %d change events\n", b.opts.apiRows)
	if err := b.cluster.CreateDatabase(ctx, apiDatabase); err != nil {
		return "", err
	}
	dbURL := b.cluster.URL(apiDatabase)
	if err := store.Migrate(ctx, dbURL, store.DefaultSchema); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())

	var sql strings.Builder
	fmt.Fprintf(&sql, "SET search_path = %s;\n", pgx.Identifier{store.DefaultSchema}.Sanitize())
	fmt.Fprintf(&sql, fillAudit, b.opts.apiRows, apiRowKeys, apiTables)
	for t := range apiTables {
		fmt.Fprintf(&sql, "CREATE TABLE public.t%[1]d (id int PRIMARY KEY, v text);\n"+
			"INSERT INTO public.t%[1]d SELECT k, k::text FROM generate_series(0, %[2]d) k WHERE k %% %[3]d = %[1]d;\n",
			t, apiRowKeys-1, apiTables)
	}
	sql.WriteString("ANALYZE;\n")
	if _, err := conn.Exec(ctx, sql.String()); err != nil {
		return "", fmt.Errorf("fill the audit trail: %w", err)
	}
	return dbURL, nil
}

// endpoints returns the measured request shapes. The ids, row keys and cursors are drawn
// at random beforehand, so a request does not find its rows in the cache of the one before.
func (ab *apiBench) endpoints(ctx context.Context, rows, requests int) ([]apiEndpoint, error) {
	ids, err := ab.sample(ctx, "change_events", "id", requests)
	if err != nil {
		return nil, err
	}
	// Row keys with a synced change, because GET /diff/{row_key} returns 404 for the others.
	keys, err := ab.sample(ctx, "sync_log", "source_id", requests)
	if err != nil {
		return nil, err
	}
	cursors, err := ab.sampleCursors(ctx, rows, requests)
	if err != nil {
		return nil, err
	}

	return []apiEndpoint{
		{"list, newest page", func(int) string { return fmt.Sprintf("/change-events/?limit=%d", apiPageSize) }},
		{"list, filter table", func(i int) string {
			return fmt.Sprintf("/change-events/?table=public.t%d&limit=%d", i%apiTables, apiPageSize)
		}},
		{"list, filter status=held", func(int) string {
			return fmt.Sprintf("/change-events/?status=held&limit=%d", apiPageSize)
		}},
		{"list, filter actor and change_type", func(i int) string {
			return fmt.Sprintf("/change-events/?actor=user%d&change_type=update&limit=%d", 3+10*(i%10), apiPageSize)
		}},
		{"list, filter row_key", func(i int) string {
			return fmt.Sprintf("/change-events/?row_key=%s&limit=%d", keys[i%len(keys)], apiPageSize)
		}},
		{"list, page after a random cursor", func(i int) string {
			return fmt.Sprintf("/change-events/?cursor=%s&limit=%d", url.QueryEscape(cursors[i]), apiPageSize)
		}},
		{"list, filter table, page after a random cursor", func(i int) string {
			return fmt.Sprintf("/change-events/?table=public.t%d&cursor=%s&limit=%d", i%apiTables,
				url.QueryEscape(cursors[i]), apiPageSize)
		}},
		{"status of a random change", func(i int) string { return "/status/" + ids[i%len(ids)] }},
		{"diff of a random row", func(i int) string { return "/diff/" + keys[i%len(keys)] }},
	}, nil
}

// sample returns up to n random values of column of a metadata table, as text.
func (ab *apiBench) sample(ctx context.Context, table, column string, n int) ([]string, error) {
	rows, err := ab.conn.Query(ctx, fmt.Sprintf("SELECT %s::text FROM %s ORDER BY random() LIMIT %d",
		pgx.Identifier{column}.Sanitize(), pgx.Identifier{store.DefaultSchema, table}.Sanitize(), n))
	if err != nil {
		return nil, err
	}
	values, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sample %s.%s: %w", table, column, err)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("sample %s.%s: the table is empty", table, column)
	}
	return values, nil
}

// sampleCursors returns n cursors at random depths of the listing, each the next_cursor
// of a one-item page that ends at a random time of the generated audit trail.
func (ab *apiBench) sampleCursors(ctx context.Context, rows, n int) ([]string, error) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4)) //nolint:gosec // G404: a benchmark's sample, not a secret
	cursors := make([]string, n)
	for i := range cursors {
		until := start.Add(time.Duration(1+rng.IntN(rows)) * time.Second).Format(time.RFC3339)
		var page api.ChangeEventPage
		if err := ab.getJSON(ctx, "/change-events/?limit=1&until="+url.QueryEscape(until), &page); err != nil {
			return nil, err
		}
		if page.NextCursor == "" {
			return nil, fmt.Errorf("no next_cursor before %s", until)
		}
		cursors[i] = page.NextCursor
	}
	return cursors, nil
}

// measure sends the requests of ep one after the other, after a warm-up, and returns the
// latency of each in milliseconds.
func (ab *apiBench) measure(ctx context.Context, ep apiEndpoint, requests int) ([]float64, error) {
	for i := range min(requests, 10) {
		if err := ab.getJSON(ctx, ep.path(i), nil); err != nil {
			return nil, err
		}
	}
	samples := make([]float64, requests)
	for i := range samples {
		start := time.Now()
		if err := ab.getJSON(ctx, ep.path(i), nil); err != nil {
			return nil, err
		}
		samples[i] = float64(time.Since(start).Microseconds()) / 1000
	}
	return samples, nil
}

// getJSON sends GET path and decodes a 200 response into v, or discards it when v is nil.
func (ab *apiBench) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ab.base+path, nil)
	if err != nil {
		return err
	}
	res, err := ab.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", path, res.StatusCode, body)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode body: %w", path, err)
	}
	return nil
}

// apiReport returns the report section of the API benchmark, empty when it did not run.
func (b *bench) apiReport(results []apiLatency) string {
	if len(results) == 0 {
		return ""
	}
	var r strings.Builder
	fmt.Fprintf(&r, "\n## API latency\n\n"+
		"The HTTP API (pkg/api, no authentication) serves in-process on 127.0.0.1. Its metadata\n"+
		"schema contains %d change events over %d row keys in %d tables, written with\n"+
		"generate_series rather than through the pipeline, and a sync_log row for each of the\n"+
		"%.1f%% that are synced.\n"+
		"One client sends %d requests per endpoint one after the other over one keep-alive\n"+
		"connection, after 10 warm-up requests; latency is measured at the client. Lists ask for\n"+
		"%d items. Random cursors, ids and row keys are drawn before the run.\n\n",
		b.opts.apiRows, apiRowKeys, apiTables, 100*(1-1.0/200), b.opts.apiRequests, apiPageSize)
	r.WriteString("| request | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|\n")
	for _, res := range results {
		fmt.Fprintf(&r, "| %s | %.2f | %.2f | %.2f |\n", res.name,
			percentile(res.samples, 0.5), percentile(res.samples, 0.99), percentile(res.samples, 1))
	}
	return r.String()
}
