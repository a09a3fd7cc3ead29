package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// drainResult is one consumer's drain of one backlog.
type drainResult struct {
	seconds float64
	rate    float64 // row changes per second
	rssKiB  int64
}

func (b *bench) runAll(ctx context.Context) (string, error) {
	var rows []string
	for _, sc := range scenarios(b.opts.rows) {
		if !strings.Contains(sc.name, b.opts.only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "csbench: %s\n", sc.name)
		cs, native, err := b.drainScenario(ctx, sc)
		if err != nil {
			return "", fmt.Errorf("%s: %w", sc.name, err)
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %.0f | %.0f | %.2f | %.1f | %.1f |",
			sc.name, sc.rowsPerTx*sc.transactions, cs.rate, native.rate, cs.rate/native.rate,
			float64(cs.rssKiB)/1024, float64(native.rssKiB)/1024))
	}
	var lag lagStats
	if b.opts.only == "" {
		fmt.Fprintln(os.Stderr, "csbench: live lag")
		var err error
		if lag, err = b.liveLag(ctx); err != nil {
			return "", fmt.Errorf("live lag: %w", err)
		}
	}
	var goRows []string
	if b.opts.only == "" {
		var err error
		if goRows, err = runGoBenchmarks(ctx); err != nil {
			return "", err
		}
	}
	var apiResults []apiLatency
	if b.opts.apiRows > 0 {
		var err error
		if apiResults, err = b.runAPIBenchmark(ctx); err != nil {
			return "", fmt.Errorf("API latency: %w", err)
		}
	}
	return b.report(rows, lag, goRows) + b.apiReport(apiResults), nil
}

// drainScenario builds a backlog in both slots with the consumers stopped, then lets
// changesync and the native subscription drain it one after the other.
func (b *bench) drainScenario(ctx context.Context, sc scenario) (drainResult, drainResult, error) {
	e, err := b.newEnv(ctx, sc.config)
	if err != nil {
		return drainResult{}, drainResult{}, err
	}
	defer b.dropEnv(ctx, e)

	clients := sc.clients
	if clients == 0 {
		clients = 4
	}
	perClient := sc.transactions / clients
	_, err = b.pgbench(e, sc.script, "-c", fmt.Sprint(clients), "-j", fmt.Sprint(min(clients, 2)),
		"-t", fmt.Sprint(perClient))
	if err != nil {
		return drainResult{}, drainResult{}, err
	}
	v, err := bumpMarker(ctx, e.srcConn)
	if err != nil {
		return drainResult{}, drainResult{}, err
	}
	changes := float64(perClient * clients * sc.rowsPerTx)

	cs, err := b.drainChangesync(ctx, e, v, changes)
	if err != nil {
		return drainResult{}, drainResult{}, err
	}
	native, err := b.drainNative(ctx, e, v, changes)
	return cs, native, err
}

func (b *bench) drainChangesync(ctx context.Context, e *env, v int64, changes float64) (drainResult, error) {
	cmd := b.changesync(e, "run")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return drainResult{}, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	if err := waitMarker(ctx, e.csConn, v, 10*time.Minute); err != nil {
		return drainResult{}, fmt.Errorf("changesync: %w\n%s", err, log.String())
	}
	secs := time.Since(start).Seconds()
	return drainResult{seconds: secs, rate: changes / secs, rssKiB: peakRSS(cmd.Process.Pid)}, nil
}

func (b *bench) drainNative(ctx context.Context, e *env, v int64, changes float64) (drainResult, error) {
	start := time.Now()
	if _, err := e.natConn.Exec(ctx, fmt.Sprintf("ALTER SUBSCRIPTION native%d ENABLE", b.round)); err != nil {
		return drainResult{}, err
	}
	if err := waitMarker(ctx, e.natConn, v, 10*time.Minute); err != nil {
		return drainResult{}, fmt.Errorf("native subscription: %w", err)
	}
	secs := time.Since(start).Seconds()
	var pid int
	_ = e.natConn.QueryRow(ctx, "SELECT pid FROM pg_stat_subscription WHERE pid IS NOT NULL LIMIT 1").Scan(&pid)
	return drainResult{seconds: secs, rate: changes / secs, rssKiB: peakRSS(pid)}, nil
}

// lagStats are end-to-end lag samples, from the source commit of a marker update to its
// first sight on the target, in milliseconds.
type lagStats struct{ cs, native []float64 }

// liveLag runs a rate-limited workload with both consumers running and samples the time
// each takes to show a marker update committed on the source every 100 ms.
func (b *bench) liveLag(ctx context.Context) (lagStats, error) {
	e, err := b.newEnv(ctx, "")
	if err != nil {
		return lagStats{}, err
	}
	defer b.dropEnv(ctx, e)
	cmd := b.changesync(e, "run")
	if err := cmd.Start(); err != nil {
		return lagStats{}, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	if _, err := e.natConn.Exec(ctx, fmt.Sprintf("ALTER SUBSCRIPTION native%d ENABLE", b.round)); err != nil {
		return lagStats{}, err
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var stats lagStats
	wg.Add(3)
	go func() { defer wg.Done(); stats.cs = sampleLag(probeCtx, b.cluster.URL(e.cs)) }()
	go func() { defer wg.Done(); stats.native = sampleLag(probeCtx, b.cluster.URL(e.native)) }()
	go func() { defer wg.Done(); bumpEvery(probeCtx, b.cluster.URL(e.src), 100*time.Millisecond) }()

	script := scenarios(0)[0].script
	_, err = b.pgbench(e, script, "-c", "4", "-j", "2", "-R", fmt.Sprint(b.opts.liveRate),
		"-T", fmt.Sprint(b.opts.liveSeconds))
	stopProbes()
	wg.Wait()
	return stats, err
}

func bumpEvery(ctx context.Context, url string, every time.Duration) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	for ctx.Err() == nil {
		_, _ = bumpMarker(ctx, conn)
		time.Sleep(every)
	}
}

// sampleLag polls a target's marker and records, for each new value, how long after its
// source commit it became visible.
func sampleLag(ctx context.Context, url string) []float64 {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil
	}
	defer conn.Close(context.Background())
	var samples []float64
	var last int64
	for ctx.Err() == nil {
		var v int64
		var ts time.Time
		if err := conn.QueryRow(ctx, "SELECT v, ts FROM marker").Scan(&v, &ts); err == nil && v != last {
			if last != 0 {
				samples = append(samples, float64(time.Since(ts).Microseconds())/1000)
			}
			last = v
		}
		time.Sleep(5 * time.Millisecond)
	}
	return samples
}

func percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (b *bench) report(rows []string, lag lagStats, goRows []string) string {
	var r strings.Builder
	fmt.Fprintf(&r, "# Benchmarks\n\nMeasured %s with `make bench` "+
		"(`go run ./cmd/csbench -binary bin/changesync -out docs/benchmarks.md`).\n\n",
		time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&r, "Machine: %s, %d cores, %s; %s; %s.\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), b.serverVersion(), runtime.Version())
	r.WriteString(`Both consumers run on one throwaway cluster (fsync=off, synchronous_commit=on) beside the
source, one after the other on the same backlog: the backlog is written with pgbench (4
clients) while both slots exist and no consumer runs; then changesync drains it, then the
native subscription. A drain ends when a marker row updated after the workload is visible
on the target; changesync's time includes its process start. RSS is the peak resident set
of the changesync process and of the native apply worker. For each row change the native
worker writes the target row; changesync also reads the target row first (to write only
the changed columns) and writes a change_events row and a sync_log row with their indexes.
The ten-rules workload repeats the first one with ten typical rules that all run and none
of which matches, so the difference between the two is the cost of validation. The
transaction of 1,000,000 UPDATEs shows the memory bound. The source streams it while
decoding it (pgoutput protocol 2), and changesync keeps it in a spill file on disk until
its commit. Then it hands the transaction on in parts of 500 changes and writes them into
one target transaction. The native subscription runs with its default, streaming = off.

## Backlog drain (row changes per second)

| workload | row changes | changesync | native | ratio | changesync peak RSS (MiB) | native worker peak RSS (MiB) |
|---|---|---|---|---|---|---|
`)
	r.WriteString(strings.Join(rows, "\n") + "\n")
	if len(lag.cs) > 0 || len(lag.native) > 0 {
		fmt.Fprintf(&r, "\n## Live lag\n\nSingle-row UPDATE transactions at %d per second for %d s, "+
			"with both consumers running;\n"+
			"a marker row is updated every 100 ms and its commit-to-visible time sampled on each target\n"+
			"(polled every 5 ms, so samples are up to 5 ms high).\n\n", b.opts.liveRate, b.opts.liveSeconds)
		r.WriteString("| consumer | samples | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|\n")
		for _, c := range []struct {
			name string
			s    []float64
		}{{"changesync", lag.cs}, {"native", lag.native}} {
			fmt.Fprintf(&r, "| %s | %d | %.1f | %.1f | %.1f |\n", c.name, len(c.s),
				percentile(c.s, 0.5), percentile(c.s, 0.99), percentile(c.s, 1))
		}
	}
	if len(goRows) > 0 {
		r.WriteString("\n## Go benchmarks\n\nRun by csbench with `go test -run '^$' -bench NAME -benchtime T PACKAGE` " +
			"against a throwaway cluster.\n\n| what | benchmark | time per operation |\n|---|---|---|\n")
		r.WriteString(strings.Join(goRows, "\n") + "\n")
	}
	return r.String()
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	raw, _ := os.ReadFile("/proc/meminfo")
	var kb int64
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
		}
	}
	return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
}

func (b *bench) serverVersion() string {
	conn, err := pgx.Connect(context.Background(), b.cluster.URL("postgres"))
	if err != nil {
		return "PostgreSQL"
	}
	defer conn.Close(context.Background())
	var v string
	_ = conn.QueryRow(context.Background(), "SHOW server_version").Scan(&v)
	return "PostgreSQL " + v
}

// goBenchmark is a Go benchmark of the repository whose result the report includes.
type goBenchmark struct {
	what, pkg, name, benchtime string
}

var goBenchmarks = []goBenchmark{
	{
		"validation of one change through ten rules (guard and burst detector included)",
		"./pkg/validate", "BenchmarkTenRules", "2s",
	},
	{
		"undo of one source transaction of 10,000 updates, in one target transaction",
		"./pkg/undo", "BenchmarkUndoTransaction10k", "3x",
	},
}

// runGoBenchmarks runs goBenchmarks with go test and returns report rows with the time
// per operation.
func runGoBenchmarks(ctx context.Context) ([]string, error) {
	var rows []string
	for _, gb := range goBenchmarks {
		fmt.Fprintf(os.Stderr, "csbench: %s\n", gb.name)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+gb.name+"$",
			"-benchtime", gb.benchtime, gb.pkg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go test -bench %s: %w\n%s", gb.name, err, out)
		}
		perOp := ""
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 4 && strings.HasPrefix(fields[0], gb.name) && fields[3] == "ns/op" {
				ns, err := strconv.ParseFloat(fields[2], 64)
				if err == nil {
					perOp = time.Duration(ns).String()
				}
			}
		}
		if perOp == "" {
			return nil, fmt.Errorf("no ns/op in the output of %s:\n%s", gb.name, out)
		}
		rows = append(rows, fmt.Sprintf("| %s | `%s` in `%s` | %s |", gb.what, gb.name, gb.pkg, perOp))
	}
	return rows, nil
}
