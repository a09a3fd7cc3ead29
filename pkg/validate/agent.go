package validate

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// DefaultDecider is the DecidedBy of a change that no guard, rule or review decided.
const DefaultDecider = "changesync:default"

// Agent decides on each change of a source transaction. For every event it applies, in
// this order:
//
//  1. The bulk guard, which looks at the whole transaction. It comes first so that no
//     rule can approve a runaway bulk change and no bulk change floods the LLM endpoint.
//  2. The rules, in order. The first match decides. They are local, cheap and written
//     by the operator, so a rule that skips a bot's rows or rejects a bad zip code keeps
//     that change from ever being sent to the LLM endpoint.
//  3. The LLM reviewer, for the changes that no rule decided and that set a configured
//     free-text column.
//
// A change that none of them decides is approved by DefaultDecider.
//
// The Agent decides all events of a transaction when Validate is first called for it,
// running the LLM requests of the transaction concurrently, and then returns the
// stored decisions. Validate is safe for concurrent use, but calls are serialized.
type Agent struct {
	rules    *Rules
	guard    *Guard
	burst    *burstDetector
	reviewer *reviewer // nil when the reviewer is off
	// tables maps each configured source table to its actor column ("" for none). Empty
	// means every table is validated.
	tables map[change.TableName]string
	types  *pgtype.Map
	alerts Alerts
	log    *slog.Logger
	warn   *limitedLog // failures repeated per change
	now    func() time.Time

	mu      sync.Mutex
	current *txDecisions // decisions of the transaction seen last
	// parts are the row counts so far of transactions that arrive in parts, by thread.
	parts map[uuid.UUID][]tableCount
	// tripped are the bulk decisions of transactions in parts that crossed a guard limit
	// after their first part, by thread. The pipeline applies such a transaction again
	// from its start, and every part of the replay gets the decision.
	tripped map[uuid.UUID]change.Decision
	// replaying marks the tripped transactions whose replay has started.
	replaying map[uuid.UUID]bool
}

// txDecisions are the decisions on the events of one transaction, by position.
type txDecisions struct {
	tx        *change.Tx
	xid       uint32
	commitLSN change.LSN
	decisions []change.Decision
	bulk      *change.Decision // the guard's decision when it decided the transaction
}

// Option sets an optional dependency of an Agent.
type Option func(*options)

type options struct {
	log        *slog.Logger
	alerts     Alerts
	lookupEnv  config.LookupEnv
	httpClient *http.Client
	now        func() time.Time
	observeLLM func(outcome string, elapsed time.Duration)
}

// WithLLMObserver sets a function that receives the outcome ("ok" or "error") and the
// duration of every LLM request, such as metrics.
func WithLLMObserver(fn func(outcome string, elapsed time.Duration)) Option {
	return func(o *options) { o.observeLLM = fn }
}

// WithLogger sets the logger. Without it the Agent logs nothing.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithAlerts sets the sink of bulk and burst alerts. Without it alerts are dropped.
func WithAlerts(a Alerts) Option { return func(o *options) { o.alerts = a } }

// WithLookupEnv sets where the LLM API key is read from, by default os.LookupEnv.
func WithLookupEnv(f config.LookupEnv) Option { return func(o *options) { o.lookupEnv = f } }

// WithHTTPClient sets the HTTP client of the LLM requests, by default a new http.Client.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// withClock sets the time used for transactions without a commit time, for tests.
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New compiles the rules and builds the guard, the burst detector and the LLM reviewer
// of cfg. cfg should be loaded and validated by the config package. The error names
// each invalid rule (as *RuleError) or setting.
func New(cfg *config.Config, opts ...Option) (*Agent, error) {
	o := options{
		log: slog.New(slog.DiscardHandler), alerts: discardAlerts{}, lookupEnv: os.LookupEnv,
		now: time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}

	costLimit := cfg.RuleCostLimit
	if costLimit == 0 {
		costLimit = config.DefaultRuleCostLimit
	}
	if costLimit < 0 {
		return nil, fmt.Errorf("rule_cost_limit %d is invalid: use a positive number", costLimit)
	}
	rules, err := NewRules(cfg.Rules, uint64(costLimit))
	if err != nil {
		return nil, fmt.Errorf("compile rules: %w", err)
	}
	guard, err := NewGuard(cfg.Guard)
	if err != nil {
		return nil, err
	}
	burst, err := newBurstDetector(cfg.Guard.Burst)
	if err != nil {
		return nil, err
	}
	rev, err := newReviewer(cfg.LLM, o.lookupEnv, o.httpClient)
	if rev != nil {
		rev.observe = o.observeLLM
	}
	if err != nil {
		return nil, err
	}

	tables := make(map[change.TableName]string, len(cfg.Tables))
	for _, t := range cfg.Tables {
		tables[t.Source] = t.ActorColumn
	}
	return &Agent{
		rules: rules, guard: guard, burst: burst, reviewer: rev, tables: tables,
		types: pgtype.NewMap(), alerts: o.alerts, log: o.log, warn: newLimitedLog(o.log, o.now),
		now: o.now, parts: map[uuid.UUID][]tableCount{}, tripped: map[uuid.UUID]change.Decision{},
		replaying: map[uuid.UUID]bool{},
	}, nil
}

// Validate returns the decision on ev, an event of tx. It implements the pipeline's
// Validator.
func (a *Agent) Validate(ctx context.Context, tx *change.Tx, ev *change.Event) change.Decision {
	a.mu.Lock()
	defer a.mu.Unlock()

	d := a.current
	if d == nil || d.tx != tx || d.xid != tx.Xid || d.commitLSN != tx.CommitLSN ||
		len(d.decisions) != len(tx.Events) {
		d = a.decideTx(ctx, tx)
		if ctx.Err() == nil {
			a.current = d // a canceled context may have cut reviews short, so decide again next time
		}
	}

	if i := eventIndex(tx, ev); i >= 0 {
		return d.decisions[i]
	}
	// An event that is not one of tx.Events, such as a copy, is decided on its own.
	if d.bulk != nil {
		return *d.bulk
	}
	return a.decideEvent(ctx, tx, ev)
}

// eventIndex returns the position of ev in tx.Events, or -1.
func eventIndex(tx *change.Tx, ev *change.Event) int {
	if ev.Seq >= 0 && ev.Seq < len(tx.Events) && &tx.Events[ev.Seq] == ev {
		return ev.Seq
	}
	for i := range tx.Events {
		if &tx.Events[i] == ev {
			return i
		}
	}
	return -1
}

// decideTx decides every event of tx.
func (a *Agent) decideTx(ctx context.Context, tx *change.Tx) *txDecisions {
	d := &txDecisions{
		tx: tx, xid: tx.Xid, commitLSN: tx.CommitLSN, decisions: make([]change.Decision, len(tx.Events)),
	}
	counts := countRows(tx, a.validates)
	a.observeBurst(ctx, tx, counts)

	if dec, ok := a.trippedDecision(tx); ok {
		for i := range d.decisions {
			d.decisions[i] = dec
		}
		d.bulk = &dec
		return d
	}
	guardCounts := a.partCounts(tx, counts)
	if dec, alert := a.guard.check(tx, guardCounts); alert != nil {
		if tx.FirstSeq > 0 {
			a.tripped[tx.ThreadID] = dec
		}
		a.alerts.Alert(ctx, *alert)
		a.log.WarnContext(ctx, "bulk guard decided a transaction", "xid", tx.Xid,
			"thread_id", tx.ThreadID.String(), "table", alert.Table.String(), "rows", alert.Count,
			"limit", alert.Limit, "verdict", string(alert.Verdict))
		for i := range d.decisions {
			d.decisions[i] = dec
		}
		d.bulk = &dec
		return d
	}

	var pending []pendingReview
	for i := range tx.Events {
		dec, review := a.decideByRules(ctx, tx, &tx.Events[i])
		d.decisions[i] = dec
		if review != nil {
			review.index = i
			pending = append(pending, *review)
		}
	}
	a.runReviews(ctx, tx, pending, d.decisions)
	return d
}

// partCounts returns the counts the guard checks for tx: for a transaction in parts,
// the counts of all its parts so far.
func (a *Agent) partCounts(tx *change.Tx, counts []tableCount) []tableCount {
	if !tx.More && tx.FirstSeq == 0 {
		return counts
	}
	if tx.FirstSeq == 0 {
		delete(a.parts, tx.ThreadID) // a replay starts counting again
	}
	total := a.parts[tx.ThreadID]
	for _, c := range counts {
		j := slices.IndexFunc(total, func(t tableCount) bool { return t.table == c.table })
		if j < 0 {
			total = append(total, tableCount{table: c.table})
			j = len(total) - 1
		}
		total[j].rows += c.rows
		total[j].deletes += c.deletes
	}
	if tx.More {
		a.parts[tx.ThreadID] = total
	} else {
		delete(a.parts, tx.ThreadID)
	}
	return total
}

// trippedDecision returns the bulk decision of a transaction in parts that crossed a
// limit after its first part. It is forgotten after the last part of a replay that had
// it from the first part on.
func (a *Agent) trippedDecision(tx *change.Tx) (change.Decision, bool) {
	dec, ok := a.tripped[tx.ThreadID]
	if !ok {
		return change.Decision{}, false
	}
	if tx.FirstSeq == 0 {
		a.replaying[tx.ThreadID] = true
	}
	if !tx.More && a.replaying[tx.ThreadID] {
		delete(a.tripped, tx.ThreadID)
		delete(a.replaying, tx.ThreadID)
	}
	return dec, true
}

// validates reports whether events of table are validated: those of the configured
// tables, which are the ones the pipeline validates, or of every table when none is
// configured.
func (a *Agent) validates(table change.TableName) bool {
	if len(a.tables) == 0 {
		return true
	}
	_, ok := a.tables[table]
	return ok
}

func (a *Agent) observeBurst(ctx context.Context, tx *change.Tx, counts []tableCount) {
	if a.burst == nil || len(counts) == 0 {
		return
	}
	at := tx.CommitTime
	if at.IsZero() {
		at = a.now()
	}
	for _, alert := range a.burst.observe(tx, counts, at) {
		a.alerts.Alert(ctx, alert)
		a.log.WarnContext(ctx, "burst of changes", "table", alert.Table.String(),
			"changes", alert.Count, "xid", tx.Xid)
	}
}

// pendingReview is an event that no rule decided and that the LLM reviewer must see.
type pendingReview struct {
	index int
	ev    *change.Event
	cols  []int
}

// decideByRules returns the rules' decision on ev, or the default approval together
// with the review that should replace it.
func (a *Agent) decideByRules(ctx context.Context, tx *change.Tx, ev *change.Event,
) (change.Decision, *pendingReview) {
	if ev.Relation == nil || !a.validates(ev.Relation.Table) {
		return change.Decision{
			Verdict: change.Approve, Reason: "the table is not configured for validation",
			DecidedBy: DefaultDecider,
		}, nil
	}

	vars := eventVars(a.types, tx, ev, a.tables[ev.Relation.Table])
	dec, matched, err := a.rules.Decide(ctx, ev.Relation.Table, vars)
	if err != nil {
		a.warn.warn(ctx, dec.DecidedBy, "rule evaluation failed, holding the change", "error", err.Error(),
			"table", ev.Relation.Table.String(), "change_id", ev.ID.String(), "xid", tx.Xid)
	}
	if matched {
		return dec, nil
	}

	approve := change.Decision{
		Verdict: change.Approve, Reason: "no rule matched and no reviewed column changed",
		DecidedBy: DefaultDecider,
	}
	if a.reviewer == nil {
		return approve, nil
	}
	cols := a.reviewer.reviewedColumns(ev, vars[varChanged].([]string))
	if len(cols) == 0 {
		return approve, nil
	}
	return approve, &pendingReview{ev: ev, cols: cols}
}

// runReviews requests the LLM reviews of the pending events, as many at once as
// llm.max_concurrency allows, and stores each decision at its position.
func (a *Agent) runReviews(ctx context.Context, tx *change.Tx, pending []pendingReview,
	decisions []change.Decision,
) {
	if len(pending) == 0 {
		return
	}
	var g errgroup.Group
	g.SetLimit(cap(a.reviewer.slots))
	for _, p := range pending {
		g.Go(func() error {
			dec, err := a.reviewer.review(ctx, p.ev, p.cols)
			if err != nil {
				a.warn.warn(ctx, LLMDecider, "LLM review failed", "error", err.Error(),
					"table", p.ev.Relation.Table.String(), "change_id", p.ev.ID.String(),
					"xid", tx.Xid, "verdict", string(dec.Verdict))
			}
			decisions[p.index] = dec
			return nil
		})
	}
	_ = g.Wait() // the reviews return no error, because a failure becomes a decision
}

// decideEvent decides one event on its own, by the rules and then the reviewer.
func (a *Agent) decideEvent(ctx context.Context, tx *change.Tx, ev *change.Event) change.Decision {
	dec, review := a.decideByRules(ctx, tx, ev)
	if review == nil {
		return dec
	}
	decisions := []change.Decision{dec}
	a.runReviews(ctx, tx, []pendingReview{*review}, decisions)
	return decisions[0]
}
