// Command changesync is a change-data-capture sidecar for PostgreSQL: it reads row changes
// from a logical replication slot, validates them, applies only the changed columns to
// target tables and keeps an audit trail.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var usage *usageError
		fmt.Fprintln(os.Stderr, "changesync:", err)
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
