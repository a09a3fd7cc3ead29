// Package pipeline wires capture, validation and apply together. It reads committed source
// transactions, decides on each change and applies the approved ones. Each batch commits
// with its audit rows and its checkpoint in one target transaction, and only then is the
// batch's LSN confirmed to the source slot.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/errgroup"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/metrics"
	"github.com/datasense/changesync/pkg/store"
)

// Source is the part of a capture reader that the pipeline uses.
type Source interface {
	// Stream sends committed transactions after start to out until ctx ends.
	Stream(ctx context.Context, start change.LSN, out chan<- *change.Tx) error
	// Confirm reports that everything up to lsn is durable in the target.
	Confirm(lsn change.LSN)
}

// Validator decides on each change before it is applied.
type Validator interface {
	Validate(ctx context.Context, tx *change.Tx, ev *change.Event) change.Decision
}

// ApproveAll is the validator used when no rules are configured.
type ApproveAll struct{}

// Validate approves every change.
func (ApproveAll) Validate(context.Context, *change.Tx, *change.Event) change.Decision {
	return change.Decision{
		Verdict: change.Approve, Reason: "no validation rules configured",
		DecidedBy: "changesync:default",
	}
}

// Config sets up a pipeline.
type Config struct {
	Name string // key of the checkpoint, usually the slot name
	Slot string
	// BatchMaxEvents caps the row events of one target transaction. A batch always takes
	// whole source transactions, so one large transaction can exceed it.
	BatchMaxEvents int
	// QueueSize is the number of decoded transactions buffered between capture and apply,
	// besides the batch that grows while the previous one commits.
	QueueSize int
	// AuditMaxValueBytes is the longest text form of a value, in bytes, that change_events
	// stores whole. A longer one is stored as a change.ValueDigest unless the change is
	// held or blocked. 0 stores every value whole.
	AuditMaxValueBytes int
}

// Option sets an optional part of a pipeline.
type Option func(*Pipeline)

// WithLogger sets the logger; without it the pipeline logs nothing.
func WithLogger(l *slog.Logger) Option { return func(p *Pipeline) { p.log = l } }

// WithMetrics sets the metrics the pipeline updates as batches commit.
func WithMetrics(m *metrics.Pipeline) Option { return func(p *Pipeline) { p.metrics = m } }

// WithValidator sets the validation step; without it every change is approved.
func WithValidator(v Validator) Option { return func(p *Pipeline) { p.validator = v } }

// Pipeline moves changes from one source slot to the target.
type Pipeline struct {
	cfg       Config
	src       Source
	applier   *apply.Applier
	store     *store.Store
	validator Validator
	log       *slog.Logger
	wants     Wants // nil writes no change events to the outbox
	outbox    outbox
	metrics   *metrics.Pipeline // nil records no metrics

	checkpoint change.LSN // commit LSN of the last transaction durable in the target
	// isolateLSN is the commit LSN of a transaction in parts that the target rejected a
	// change of; its replay applies it change by change.
	isolateLSN change.LSN
}

// New returns a pipeline. The store must be migrated and the applier built for the
// configured tables.
func New(cfg Config, src Source, applier *apply.Applier, st *store.Store, opts ...Option) *Pipeline {
	if cfg.BatchMaxEvents <= 0 {
		cfg.BatchMaxEvents = 5000
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	p := &Pipeline{
		cfg: cfg, src: src, applier: applier, store: st, validator: ApproveAll{},
		log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Run streams and applies changes until ctx ends. When ctx ends it finishes and confirms
// the batch in flight, then returns nil. It returns an error when the stream fails in a
// way a retry cannot fix.
func (p *Pipeline) Run(ctx context.Context) error {
	policy := backoff.NewExponentialBackOff()
	policy.MaxInterval = 30 * time.Second
	for {
		err := p.runStream(ctx)
		if !errors.Is(err, errRestart) {
			return err
		}
		delay := policy.NextBackOff()
		p.log.Warn("restarting the stream from the checkpoint", "pipeline", p.cfg.Name,
			"checkpoint_lsn", p.checkpoint.String(), "retry_in", delay.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// runStream streams from the checkpoint and applies until ctx ends, the stream fails,
// or applying needs the stream to start again (errRestart).
func (p *Pipeline) runStream(ctx context.Context) error {
	commit, end, found, err := p.store.Checkpoint(ctx, p.cfg.Name)
	if err != nil {
		return err
	}
	p.checkpoint = commit
	p.log.Info("pipeline starting", "pipeline", p.cfg.Name, "slot", p.cfg.Slot,
		"checkpoint_lsn", commit.String(), "has_checkpoint", found)

	txs := make(chan *change.Tx, p.cfg.QueueSize)
	batches := make(chan []*change.Tx)
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	streamCtx, stopStream := context.WithCancel(gctx)
	g.Go(func() error {
		err := p.src.Stream(streamCtx, end, txs)
		if err != nil {
			return fmt.Errorf("stream from slot %s: %w", p.cfg.Slot, err)
		}
		return nil
	})
	g.Go(func() error {
		p.batchTxs(streamCtx, txs, batches)
		return nil
	})
	g.Go(func() error {
		defer stopStream()
		return p.applyLoop(ctx, gctx, batches)
	})
	err = g.Wait()
	p.log.Info("pipeline stopped", "pipeline", p.cfg.Name, "checkpoint_lsn", p.checkpoint.String())
	return err
}

// applyLoop commits batches until ctx (shutdown) or group (a failed stream) ends.
func (p *Pipeline) applyLoop(ctx, group context.Context, batches <-chan []*change.Tx) error {
	for {
		batch := p.collect(ctx, group, batches)
		if batch == nil {
			return nil
		}
		commit := p.commitWithRetry
		if batch[len(batch)-1].More {
			commit = func(ctx, group context.Context, batch []*change.Tx) error {
				return p.commitLarge(ctx, group, batch, batches)
			}
		}
		if err := commit(ctx, group, batch); err != nil {
			return err
		}
	}
}

// collect waits for the next batch. It returns nil when ctx or group ends first.
func (p *Pipeline) collect(ctx, group context.Context, batches <-chan []*change.Tx) []*change.Tx {
	select {
	case <-ctx.Done():
		return nil
	case <-group.Done():
		return nil
	case batch := <-batches:
		return batch
	}
}

// batchTxs groups the transactions from txs into batches of up to BatchMaxEvents events
// and hands each to batches as soon as the apply loop takes it, until ctx ends. While
// the apply loop commits one batch, the next one grows. So under a backlog batches fill
// up however few events each transaction has, and on a quiet source each transaction is
// committed as soon as it arrives.
//
// A part of a large transaction ends its batch, and each later part of it is a batch of
// its own, which commitLarge takes with nextPart.
func (p *Pipeline) batchTxs(ctx context.Context, txs <-chan *change.Tx, batches chan<- []*change.Tx) {
	var pending []*change.Tx
	events := 0
	add := func(tx *change.Tx) {
		pending = append(pending, tx)
		events += len(tx.Events)
	}
	for {
		// Take what is already queued before offering the batch.
	queued:
		for !p.batchClosed(pending, events) {
			select {
			case tx := <-txs:
				add(tx)
			default:
				break queued
			}
		}

		var in <-chan *change.Tx
		if !p.batchClosed(pending, events) {
			in = txs
		}
		var out chan<- []*change.Tx
		if len(pending) > 0 {
			out = batches
		}
		select {
		case <-ctx.Done():
			return
		case tx := <-in:
			add(tx)
		case out <- pending:
			pending, events = nil, 0
		}
	}
}

// batchClosed reports whether a batch of the given number of events takes no more
// transactions. It is closed once it has BatchMaxEvents events, when it ends with a part
// of a transaction, and when it starts with a later part of one (only later parts have a
// FirstSeq above 0).
func (p *Pipeline) batchClosed(batch []*change.Tx, events int) bool {
	if len(batch) == 0 {
		return false
	}
	return events >= p.cfg.BatchMaxEvents || batch[len(batch)-1].More || batch[0].FirstSeq > 0
}

// commitWithRetry commits a batch, retrying with backoff while the target fails. A
// shutdown during the retries gives the batch up: it was not confirmed, so the slot sends
// it again after a restart.
func (p *Pipeline) commitWithRetry(ctx, group context.Context, batch []*change.Tx) error {
	work := context.WithoutCancel(ctx)
	policy := backoff.NewExponentialBackOff()
	policy.MaxInterval = 30 * time.Second
	isolate := false
	for attempt := 1; ; attempt++ {
		err := p.commitBatch(work, batch, isolate)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPermanent) {
			return err
		}
		if !isolate && apply.IsTargetRejection(err) {
			// Applying the batch change by change finds the change the target rejects,
			// records it as failed and lets the others through.
			// TODO: hold it instead and block later changes of its row, once held
			// changes can be released.
			isolate = true
			p.log.Warn("the target rejected a change of the batch; applying it change by change",
				"pipeline", p.cfg.Name, "first_lsn", batch[0].CommitLSN.String(), "error", err)
			continue
		}
		delay := policy.NextBackOff()
		p.log.Error("batch not committed; retrying", "pipeline", p.cfg.Name, "attempt", attempt,
			"retry_in", delay.String(), "first_lsn", batch[0].CommitLSN.String(), "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-group.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// errPermanent marks batch errors that a retry cannot fix.
var errPermanent = errors.New("permanent")

// errRestart makes Run start the stream again from the checkpoint, because the failure
// cannot be retried from memory: the parts of a large transaction are consumed.
var errRestart = errors.New("the stream must restart from the checkpoint")
