// Command csbench measures how fast changesync drains a replication backlog into a target
// and how far it lags behind a live workload, beside PostgreSQL's own publication and
// subscription on the same workload in the same run, and the latency of the HTTP API over a
// large audit trail. It prints a markdown report and can write it to a file (make bench
// writes docs/benchmarks.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "csbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	opts := options{}
	flag.StringVar(&opts.binary, "binary", "bin/changesync", "path of the changesync binary to measure")
	flag.IntVar(&opts.rows, "rows", 40000, "row changes per backlog scenario")
	flag.IntVar(&opts.liveSeconds, "live-seconds", 10, "duration of the live lag run, in seconds")
	flag.IntVar(&opts.liveRate, "live-rate", 1000, "transactions per second of the live lag run")
	flag.StringVar(&opts.out, "out", "", "also write the report to this file")
	flag.StringVar(&opts.only, "only", "", "run only the backlog scenarios whose name contains this text, "+
		"and no live lag run")
	flag.IntVar(&opts.apiRows, "api-rows", 1000000, "change events in the audit trail of the API latency "+
		"benchmark, which runs even with -only; 0 skips it")
	flag.IntVar(&opts.apiRequests, "api-requests", 300, "requests per endpoint of the API latency benchmark")
	flag.Parse()

	b, err := newBench(ctx, opts)
	if err != nil {
		return err
	}
	defer b.close()
	report, err := b.runAll(ctx)
	if err != nil {
		return err
	}
	fmt.Print(report)
	if opts.out != "" {
		if err := os.MkdirAll(filepath.Dir(opts.out), 0o750); err != nil {
			return fmt.Errorf("create the report's directory: %w", err)
		}
		//nolint:gosec // a report in the repository, meant to be read by everyone
		if err := os.WriteFile(opts.out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}
