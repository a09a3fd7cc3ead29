package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/capture"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/metrics"
	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/preflight"
	"github.com/datasense/changesync/pkg/retention"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/undo"
	"github.com/datasense/changesync/pkg/validate"
)

// app is a loaded configuration and the logger built from it.
type app struct {
	cfg *config.Config
	log *slog.Logger
}

func newApp(path string) (*app, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return &app{cfg: cfg, log: newLogger(cfg.Log, os.Stdout)}, nil
}

// sourceTables returns the configured source tables.
func (a *app) sourceTables() []change.TableName {
	tables := make([]change.TableName, len(a.cfg.Tables))
	for i, t := range a.cfg.Tables {
		tables[i] = t.Source
	}
	return tables
}

func (a *app) reader() (*capture.Reader, error) {
	return capture.New(capture.Config{
		URL:              a.cfg.Source.URL,
		Publication:      a.cfg.Source.Publication,
		Slot:             a.cfg.Source.Slot,
		Tables:           a.sourceTables(),
		StatusInterval:   a.cfg.Source.StatusInterval,
		Heartbeat:        a.cfg.Source.Heartbeat,
		DisableStreaming: !a.cfg.Source.Streaming,
		SpillDir:         a.cfg.Source.SpillDir,
	}, capture.WithLogger(a.log))
}

// tableSpecs turns the table configuration into the applier's mappings.
func (a *app) tableSpecs() []apply.TableSpec {
	specs := make([]apply.TableSpec, len(a.cfg.Tables))
	for i, t := range a.cfg.Tables {
		specs[i] = apply.TableSpec{
			Source: t.Source, Target: t.Target, Key: t.Key, Columns: t.Columns,
			Exclude: t.Exclude, Truncate: t.Truncate, ActorColumn: t.ActorColumn,
		}
	}
	return specs
}

func runMigrate(ctx context.Context, a *app) error {
	if err := store.Migrate(ctx, a.cfg.Target.URL, a.cfg.Target.Schema); err != nil {
		return err
	}
	a.log.Info("metadata schema migrated", "schema", a.cfg.Target.Schema)
	return nil
}

func runSetup(ctx context.Context, a *app) error {
	r, err := a.reader()
	if err != nil {
		return err
	}
	created, err := r.Setup(ctx)
	if err != nil {
		return err
	}
	a.log.Info("publication and slot ready", "slot", a.cfg.Source.Slot,
		"publication", a.cfg.Source.Publication, "slot_created", created)
	if !created {
		return nil
	}
	// A checkpoint left from an earlier slot of the same name would make run stream from
	// the new slot without the initial copy.
	return a.forgetCheckpoint(ctx, "the replication slot was created anew")
}

func runTeardown(ctx context.Context, a *app) error {
	r, err := a.reader()
	if err != nil {
		return err
	}
	if err := r.Teardown(ctx); err != nil {
		return err
	}
	a.log.Info("publication and slot dropped", "slot", a.cfg.Source.Slot,
		"publication", a.cfg.Source.Publication)
	return a.forgetCheckpoint(ctx, "the replication slot was dropped")
}

// forgetCheckpoint deletes the pipeline's checkpoint, because the slot it belongs to is
// gone. Without a checkpoint, the next run copies the tables again when source.snapshot
// is initial. A metadata schema that was never migrated has nothing to delete.
func (a *app) forgetCheckpoint(ctx context.Context, reason string) error {
	deleted, err := store.ForgetCheckpoint(ctx, a.cfg.Target.URL, a.cfg.Target.Schema, a.cfg.Pipeline)
	if err != nil {
		return fmt.Errorf("%s, but the checkpoint of pipeline %s was not deleted: %w; delete "+
			"it before the next run with DELETE FROM %s.checkpoints WHERE pipeline = '%s'",
			reason, a.cfg.Pipeline, err, pgx.Identifier{a.cfg.Target.Schema}.Sanitize(), a.cfg.Pipeline)
	}
	if deleted {
		a.log.Info("checkpoint deleted, so the next run starts as a new pipeline",
			"pipeline", a.cfg.Pipeline, "reason", reason)
	}
	return nil
}

func runCheck(ctx context.Context, a *app) error {
	report := preflight.Check(ctx, a.cfg)
	if err := report.Write(os.Stdout); err != nil {
		return fmt.Errorf("print the check report: %w", err)
	}
	rulesErr := checkRules(a)
	if rulesErr != nil {
		fmt.Printf("FAIL  rules: %v\n", rulesErr)
	}
	_, transformsErr := compileTransforms(a)
	if transformsErr != nil {
		fmt.Printf("FAIL  transforms: %v\n", transformsErr)
	}
	_, notifyErr := notify.ParseConfig(&a.cfg.Notify, os.LookupEnv)
	if notifyErr != nil {
		fmt.Printf("FAIL  notify: %v\n", notifyErr)
	}
	if !report.OK() || rulesErr != nil || transformsErr != nil || notifyErr != nil {
		return fmt.Errorf("check found problems; fix them and run check again")
	}
	return nil
}

// checkRules compiles and type-checks the validation rules, without the LLM settings
// that only run needs.
func checkRules(a *app) error {
	if len(a.cfg.Rules) == 0 {
		return nil
	}
	_, err := validate.NewRules(a.cfg.Rules, uint64(max(a.cfg.RuleCostLimit, 0)))
	return err
}

// preflight runs the checks of `changesync check` and refuses to start when one fails,
// before anything is created on the source: a published table without a replica
// identity would make the application's own UPDATEs fail.
func (a *app) preflight(ctx context.Context) error {
	report := preflight.Check(ctx, a.cfg)
	failed := 0
	for _, res := range report.Results {
		switch {
		case !res.OK:
			failed++
			a.log.Error("check failed", "check", res.Name, "detail", res.Detail, "fix", res.Fix)
		case res.Warn:
			a.log.Warn("check warning", "check", res.Name, "detail", res.Detail, "fix", res.Fix)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d start checks failed (logged above); fix them, "+
			"and run changesync check --config FILE to see the full report", failed)
	}
	return nil
}

// openTarget opens the metadata store and builds the applier of the configured tables.
// The caller closes the store.
func (a *app) openTarget(ctx context.Context) (*store.Store, *apply.Applier, error) {
	specs, err := a.applySpecs()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, a.cfg.Target.URL, a.cfg.Target.Schema)
	if err != nil {
		return nil, nil, err
	}
	applier, err := apply.New(ctx, st.Pool, specs, apply.Policy{
		OnExistingRow: a.cfg.Apply.OnExistingRow, OnMissingRow: a.cfg.Apply.OnMissingRow,
		OnMissingColumn: a.cfg.Apply.OnMissingColumn,
	}, a.log)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, applier, nil
}

// runSidecar migrates the metadata schema, prepares the slot (with the initial snapshot
// when configured) and streams until a signal arrives.
func runSidecar(ctx context.Context, a *app) error {
	a.log.Info("changesync starting", "version", version, "pipeline", a.cfg.Pipeline,
		"slot", a.cfg.Source.Slot, "tables", len(a.cfg.Tables))
	// An invalid transform stops the start before anything is created; openTarget
	// compiles the transforms again for the applier.
	if _, err := compileTransforms(a); err != nil {
		return err
	}
	if err := a.preflight(ctx); err != nil {
		return err
	}
	if err := store.Migrate(ctx, a.cfg.Target.URL, a.cfg.Target.Schema); err != nil {
		return err
	}
	st, applier, err := a.openTarget(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	r, err := a.reader()
	if err != nil {
		return err
	}
	notifyCfg, err := notify.ParseConfig(&a.cfg.Notify, os.LookupEnv)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	pipelineMetrics, err := metrics.NewPipeline(reg, a.cfg.Pipeline)
	if err != nil {
		return err
	}
	pipelineMetrics.SetCaughtUp(metrics.CaughtUp(r))
	source, err := pgxpool.New(ctx, a.cfg.Source.URL)
	if err != nil {
		return fmt.Errorf("connect to the source for metrics: %w", err)
	}
	defer source.Close()
	reg.MustRegister(metrics.NewCollector(a.cfg.Pipeline, a.cfg.Source.Slot, source, st.Pool, r, a.log))
	applier.OnCopyProgress(func(table change.TableName, copied, estimate int64) {
		pipelineMetrics.Snapshot(table.String(), copied, estimate)
	})
	sink := &alertSink{log: a.log, name: a.cfg.Pipeline, wants: notifyCfg.Wants}
	observeLLM, err := metrics.LLMObserver(reg, a.cfg.Pipeline)
	if err != nil {
		return err
	}
	agent, err := validate.New(a.cfg, validate.WithLogger(a.log), validate.WithAlerts(sink),
		validate.WithLLMObserver(observeLLM))
	if err != nil {
		return err
	}
	p := pipeline.New(pipeline.Config{
		Name: a.cfg.Pipeline, Slot: a.cfg.Source.Slot, BatchMaxEvents: a.cfg.Apply.BatchMaxEvents,
		AuditMaxValueBytes: a.cfg.Audit.MaxValueBytes,
	}, r, applier, st, pipeline.WithLogger(a.log), pipeline.WithValidator(agent),
		pipeline.WithNotifications(notifyCfg.Wants), pipeline.WithMetrics(pipelineMetrics))
	sink.pipeline = p
	undoOutcomes, err := metrics.UndoOutcomes(reg, a.cfg.Pipeline)
	if err != nil {
		return err
	}
	undoer, err := undo.New(undo.Config{Store: st, Tables: a.tableSpecs()}, undo.WithLogger(a.log),
		undo.WithOutcomes(undoOutcomes))
	if err != nil {
		return err
	}
	var standby atomic.Bool // set while another process holds the pipeline's active lock
	server, err := api.New(api.Config{
		Cfg: a.cfg, Store: st, Applier: applier, Undo: undoer, Pipeline: a.cfg.Pipeline,
		Gatherer: reg, Log: a.log, Notify: notifyCfg.Wants,
		Replicating: func() bool { return r.Stats().Connected }, Standby: standby.Load,
	})
	if err != nil {
		return err
	}
	defer server.Close()

	// The notify metrics get the pipeline label that every other series has.
	notifyReg := prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": a.cfg.Pipeline}, reg)
	dispatcher, err := notify.NewDispatcher(st, notifyCfg, notifyReg, notify.WithLogger(a.log))
	if err != nil {
		return err
	}
	housekeeping, err := retention.New(st, a.cfg.Retention, a.cfg.Pipeline, reg, a.log)
	if err != nil {
		return err
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Run(gctx) })
	g.Go(func() error {
		// Only the active process prepares the slot, streams and notifies; a standby
		// waits here and serves the API meanwhile.
		lock, err := becomeActive(gctx, a.cfg.Target.URL, a.cfg.Pipeline, a.log, &standby)
		if lock == nil {
			return err
		}
		defer lock.release()
		err = p.Prepare(gctx, r, pipeline.PrepareConfig{
			SourceURL: a.cfg.Source.URL,
			Snapshot:  a.cfg.Source.Snapshot == "initial",
			Tables:    a.sourceTables(),
		})
		if err != nil {
			return err
		}
		active, actx := errgroup.WithContext(gctx)
		active.Go(func() error { return p.Run(actx) })
		active.Go(func() error { return lock.watch(actx) })
		active.Go(func() error { return housekeeping.Run(actx) })
		active.Go(func() error { return reportCatchUp(actx, r, a.cfg.Pipeline, a.log) })
		if notifyCfg.HasDestinations() {
			active.Go(func() error { return dispatcher.Run(actx) })
		}
		return active.Wait()
	})
	err = g.Wait()
	a.log.Info("changesync stopped", "uptime", time.Since(start).Round(time.Second).String())
	return err
}
