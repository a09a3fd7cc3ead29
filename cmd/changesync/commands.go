package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is a wrong command line; main exits 2 on it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

const usage = `usage: changesync <command> [flags]

commands:
  run       stream changes from the source slot to the target (the sidecar)
  migrate   create or upgrade the metadata schema in the target database
  setup     create the publication and the replication slot
  teardown  drop the replication slot and the publication
  check     check configuration, connectivity, replica identity and target tables
  undo      restore what changesync wrote for a change, thread, row or time window
  release   approve or reject a held change, then apply the changes blocked behind it
  demo      play the reference scenario on a throwaway local PostgreSQL
  version   print the version

Run 'changesync <command> -h' for the flags of a command.`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{usage}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return withConfig(ctx, cmd, rest, runSidecar)
	case "migrate":
		return withConfig(ctx, cmd, rest, runMigrate)
	case "setup":
		return withConfig(ctx, cmd, rest, runSetup)
	case "teardown":
		return withConfig(ctx, cmd, rest, runTeardown)
	case "check":
		return withConfig(ctx, cmd, rest, runCheck)
	case "release":
		return runRelease(ctx, rest, os.Stdout)
	case "undo":
		return runUndoCommand(ctx, rest, os.Stdout)
	case "demo":
		return runDemo(ctx, rest, os.Stdout)
	case "version", "-version", "--version":
		if len(rest) > 0 && rest[0] != "-h" && rest[0] != "--help" && rest[0] != "-help" {
			return &usageError{fmt.Sprintf("version: unexpected argument %q", rest[0])}
		}
		printVersion(os.Stdout)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Println(usage)
		return nil
	default:
		return &usageError{fmt.Sprintf("unknown command %q\n\n%s", cmd, usage)}
	}
}

// withConfig parses the --config flag of a command, loads the file and calls fn.
func withConfig(ctx context.Context, name string, args []string, fn func(context.Context, *app) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", os.Getenv("CHANGESYNC_CONFIG"),
		"path of the YAML configuration file (default: $CHANGESYNC_CONFIG)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Printf("usage: changesync %s --config FILE\n\nflags:\n%s", name, flagHelp(fs))
			return nil
		}
		return &usageError{fmt.Sprintf("%s: %v\nflags:\n%s", name, err, flagHelp(fs))}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("%s: unexpected argument %q: %s takes only flags, "+
			"such as --config FILE", name, fs.Arg(0), name)}
	}
	if *path == "" {
		return &usageError{fmt.Sprintf("%s: missing --config FILE (or set CHANGESYNC_CONFIG)", name)}
	}
	a, err := newApp(*path)
	if err != nil {
		return err
	}
	return fn(ctx, a)
}

func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

func printVersion(w io.Writer) {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	fmt.Fprintln(w, "changesync", v)
}
