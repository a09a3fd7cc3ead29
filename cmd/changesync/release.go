package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/pipeline"
)

const releaseUsage = `usage: changesync release --config FILE (--change ID | --thread ID)
                          (--approve | --reject) --by NAME [--reason TEXT]

Approves or rejects a held change, or every held change of one source transaction, and
then applies the changes of the same rows that were blocked behind it.`

// runRelease is the release command: the way to decide held changes without the API.
func runRelease(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", os.Getenv("CHANGESYNC_CONFIG"), "path of the YAML configuration file")
	changeID := fs.String("change", "", "id of the held change")
	threadID := fs.String("thread", "", "thread id: every held change of one source transaction")
	approve := fs.Bool("approve", false, "apply the held change")
	reject := fs.Bool("reject", false, "record the held change as rejected and never apply it")
	by := fs.String("by", "", "who decides, recorded as decided_by")
	reason := fs.String("reason", "", "why, recorded as the decision reason")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "%s\n\nflags:\n%s", releaseUsage, flagHelp(fs))
			return nil
		}
		return &usageError{fmt.Sprintf("release: %v\n\n%s", err, releaseUsage)}
	}
	req, err := releaseRequest(fs, *changeID, *threadID, *approve, *reject, *by, *reason)
	if err != nil {
		return err
	}
	if *path == "" {
		return &usageError{"release: missing --config FILE (or set CHANGESYNC_CONFIG)"}
	}

	a, err := newApp(*path)
	if err != nil {
		return err
	}
	st, applier, err := a.openTarget(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	notifyCfg, err := notify.ParseConfig(&a.cfg.Notify, os.LookupEnv)
	if err != nil {
		return err
	}
	res, err := pipeline.Release(ctx, st, applier, a.cfg.Pipeline, req,
		pipeline.WithReleaseNotifications(notifyCfg.Wants),
		pipeline.WithReleaseMaxValueBytes(a.cfg.Audit.MaxValueBytes))
	if err != nil {
		return err
	}

	verb := "approved"
	if !req.Approve {
		verb = "rejected"
	}
	fmt.Fprintf(out, "%d held change(s) %s, %d blocked change(s) applied, %d failed, %d still blocked\n",
		len(res.Released), verb, len(res.Applied), len(res.Failed), res.Blocked)
	for _, id := range res.Failed {
		fmt.Fprintf(out, "failed: %s (see change_events.error)\n", id)
	}
	return nil
}

func releaseRequest(fs *flag.FlagSet, changeID, threadID string, approve, reject bool, by, reason string,
) (pipeline.ReleaseRequest, error) {
	req := pipeline.ReleaseRequest{Approve: approve, By: by, Reason: reason}
	if fs.NArg() > 0 {
		return req, &usageError{fmt.Sprintf("release: unexpected argument %q", fs.Arg(0))}
	}
	if (changeID == "") == (threadID == "") {
		return req, &usageError{"release: give either --change ID or --thread ID\n\n" + releaseUsage}
	}
	if approve == reject {
		return req, &usageError{"release: give either --approve or --reject\n\n" + releaseUsage}
	}
	if by == "" {
		return req, &usageError{"release: missing --by NAME: who decides is recorded with the change"}
	}
	id, flagName := changeID, "--change"
	if threadID != "" {
		id, flagName = threadID, "--thread"
	}
	parsed, err := uuid.Parse(id)
	if err != nil {
		return req, &usageError{fmt.Sprintf("release: %s %q is not a UUID such as "+
			"3f0c1a52-7d4e-5b8f-9a61-0c2d4e6f8a10", flagName, id)}
	}
	if parsed == uuid.Nil {
		return req, &usageError{fmt.Sprintf("release: %s is the nil UUID, which no change has", flagName)}
	}
	if changeID != "" {
		req.ChangeID = parsed
	} else {
		req.ThreadID = parsed
	}
	return req, nil
}
