package validate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	openai "github.com/sashabaranov/go-openai"
	"golang.org/x/sync/singleflight"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// LLMDecider is the DecidedBy prefix of the LLM reviewer's decisions, followed by the
// model name.
const LLMDecider = "llm:"

// defaultInstructions is the review policy when llm.instructions is empty.
const defaultInstructions = "Reject a value that contains credentials, secrets, payment card " +
	"numbers or abusive language. Hold a value that looks like test data, a mistake or " +
	"text pasted into the wrong field. Approve everything else."

// systemPrompt frames every request. The policy follows it.
const systemPrompt = "You review free-text columns of database row changes before they are " +
	"copied to another system. The user message is a JSON object with the table, the " +
	"operation (insert or update), the column and its new value. Reply with only a JSON " +
	`object {"verdict": "approve" | "reject" | "hold", "reason": "<one sentence>"}. ` +
	"Policy: "

// verdictSchema is the JSON schema of a reply, sent as a strict structured-output format.
var verdictSchema = json.RawMessage(`{
	"type": "object",
	"properties": {
		"verdict": {"type": "string", "enum": ["approve", "reject", "hold"]},
		"reason": {"type": "string"}
	},
	"required": ["verdict", "reason"],
	"additionalProperties": false
}`)

// ErrInvalidReply is wrapped by the errors of a reply that is not a verdict: not JSON,
// an unknown verdict, or no reason.
var ErrInvalidReply = errors.New("the model's reply is not a valid verdict")

// llmVerdict is a model's decision on one value.
type llmVerdict struct {
	Verdict change.Verdict `json:"verdict"`
	Reason  string         `json:"reason"`
}

// reviewRequest is the user message of a request: the only data of a change that leaves
// changesync.
type reviewRequest struct {
	Table  string `json:"table"`
	Op     string `json:"op"`
	Column string `json:"column"`
	Value  string `json:"value"`
}

// reviewer requests a verdict from an OpenAI-compatible endpoint on each configured
// column that a change sets to a new text value.
type reviewer struct {
	client       *openai.Client
	model        string
	instructions string
	columns      map[change.TableName][]string
	timeout      time.Duration
	onError      change.Verdict
	slots        chan struct{} // one token per request in flight
	cache        *verdictCache // nil when the cache is off
	flights      singleflight.Group
	observe      func(outcome string, elapsed time.Duration) // nil records nothing
}

// newReviewer returns the reviewer of cfg, or nil when it is not enabled. It reads the
// API key once, from the variable that cfg.APIKeyEnv names.
func newReviewer(cfg config.LLM, lookupEnv config.LookupEnv, httpClient *http.Client) (*reviewer, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	if cfg.BaseURL == "" || cfg.Model == "" {
		return nil, errors.New("llm is enabled without base_url or model: set both, or set llm.enabled to false")
	}
	keyEnv := cmp.Or(cfg.APIKeyEnv, config.DefaultAPIKeyEnv)
	key, ok := lookupEnv(keyEnv)
	if !ok || key == "" {
		return nil, fmt.Errorf("environment variable %s, named by llm.api_key_env, is not set: set it to "+
			"the API key (any value for an endpoint without authentication)", keyEnv)
	}

	r := &reviewer{
		model:        cfg.Model,
		instructions: cmp.Or(cfg.Instructions, defaultInstructions),
		columns:      map[change.TableName][]string{},
		timeout:      cfg.Timeout,
		onError:      change.Verdict(cmp.Or(cfg.OnError, string(change.Hold))),
		slots:        make(chan struct{}, max(cfg.MaxConcurrency, 1)),
	}
	if r.timeout <= 0 {
		r.timeout = config.DefaultLLMTimeout
	}
	if cfg.CacheSize > 0 {
		r.cache = newVerdictCache(cfg.CacheSize)
	}
	for _, ref := range cfg.Columns {
		table, column, err := config.ParseColumnRef(ref)
		if err != nil {
			return nil, fmt.Errorf("llm.columns: %w", err)
		}
		r.columns[table] = append(r.columns[table], column)
	}

	clientCfg := openai.DefaultConfig(key)
	clientCfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if httpClient != nil {
		clientCfg.HTTPClient = httpClient
	}
	r.client = openai.NewClientWithConfig(clientCfg)
	return r, nil
}

// reviewedColumns returns the configured columns of ev's table that ev sets to a new
// text value. A DELETE, a TRUNCATE and a column set to NULL are not reviewed.
func (r *reviewer) reviewedColumns(ev *change.Event, changed []string) []int {
	if ev.Relation == nil || (ev.Op != change.OpInsert && ev.Op != change.OpUpdate) {
		return nil
	}
	var cols []int
	for _, name := range r.columns[ev.Relation.Table] {
		i := ev.Relation.ColumnIndex(name)
		if i < 0 || i >= len(ev.New) || ev.New[i].Kind != change.Text || !slices.Contains(changed, name) {
			continue
		}
		cols = append(cols, i)
	}
	return cols
}

// review decides ev from the verdicts on the columns at cols: the most severe verdict
// wins (reject, then hold, then skip, then approve). A column whose request fails or
// whose reply is not a verdict counts with the on_error verdict. The returned error
// joins the failures, for the log.
func (r *reviewer) review(ctx context.Context, ev *change.Event, cols []int) (change.Decision, error) {
	var (
		dec  change.Decision
		errs []error
	)
	for _, i := range cols {
		ref := ev.Relation.Table.String() + "." + ev.Relation.Columns[i].Name
		v, err := r.verdict(ctx, ev, i)
		if err != nil {
			errs = append(errs, fmt.Errorf("review %s: %w", ref, err))
			v = llmVerdict{
				Verdict: r.onError,
				Reason:  fmt.Sprintf("review failed, so llm.on_error decides %s: %v", r.onError, err),
			}
		}
		if dec.Verdict == "" || severity(v.Verdict) > severity(dec.Verdict) {
			dec = change.Decision{Verdict: v.Verdict, Reason: ref + ": " + v.Reason, DecidedBy: LLMDecider + r.model}
		}
	}
	return dec, errors.Join(errs...)
}

// verdict returns the verdict on column col of ev from the cache or from one request,
// shared by concurrent callers that ask about the same value.
func (r *reviewer) verdict(ctx context.Context, ev *change.Event, col int) (llmVerdict, error) {
	req := reviewRequest{
		Table: ev.Relation.Table.String(), Op: string(ev.Op),
		Column: ev.Relation.Columns[col].Name, Value: ev.New[col].Text,
	}
	digest := sha256.Sum256([]byte(req.Value))
	key := req.Table + "." + req.Column + "\x00" + req.Op + "\x00" + hex.EncodeToString(digest[:])
	if r.cache != nil {
		if v, ok := r.cache.get(key); ok {
			return v, nil
		}
	}

	if err := ctx.Err(); err != nil {
		return llmVerdict{}, fmt.Errorf("review canceled before the request: %w", err)
	}
	res, err, _ := r.flights.Do(key, func() (any, error) {
		v, err := r.request(context.WithoutCancel(ctx), ctx.Done(), req)
		if err == nil && r.cache != nil {
			r.cache.put(key, v)
		}
		return v, err
	})
	if err != nil {
		return llmVerdict{}, err
	}
	return res.(llmVerdict), nil
}

// Backoff between attempts of one review request. Attempts go on while the next one can
// start within llm.timeout.
const (
	retryInitialInterval = 250 * time.Millisecond
	retryMaxInterval     = 2 * time.Second
)

// request sends a chat completion within the timeout, after waiting for a free slot
// until done is closed. A 429 or 5xx status is retried with backoff within the timeout.
func (r *reviewer) request(ctx context.Context, done <-chan struct{}, req reviewRequest) (llmVerdict, error) {
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-done:
		return llmVerdict{}, errors.New("canceled while waiting for a free request slot")
	}

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	user, err := json.Marshal(req)
	if err != nil {
		return llmVerdict{}, fmt.Errorf("encode request: %w", err)
	}
	var last error
	attempt := func() (llmVerdict, error) {
		start := time.Now()
		verdict, err := r.complete(ctx, user)
		if r.observe != nil {
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			r.observe(outcome, time.Since(start))
		}
		last = err
		if err != nil && !retryable(err) {
			return verdict, backoff.Permanent(err)
		}
		return verdict, err
	}
	policy := &backoff.ExponentialBackOff{
		InitialInterval:     retryInitialInterval,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         retryMaxInterval,
	}
	verdict, err := backoff.Retry(ctx, attempt, backoff.WithBackOff(policy),
		backoff.WithMaxElapsedTime(r.timeout))
	if err != nil && last != nil && ctx.Err() != nil {
		err = last // the endpoint's error is more useful than the deadline that ended the retries
	}
	return verdict, err
}

// retryable reports whether a failed request may succeed when sent again: the endpoint
// returned 429 Too Many Requests or a 5xx status.
func retryable(err error) bool {
	status := 0
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status = apiErr.HTTPStatusCode
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
	}
	return status == http.StatusTooManyRequests || status >= http.StatusInternalServerError
}

// complete sends the chat completion of one review request and parses the reply.
func (r *reviewer) complete(ctx context.Context, user []byte) (llmVerdict, error) {
	resp, err := r.client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model: r.model,
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: systemPrompt + r.instructions},
			{Role: openai.ChatMessageRoleUser, Content: string(user)},
		},
		ResponseFormat: &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name: "change_verdict", Schema: verdictSchema, Strict: true,
			},
		},
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return llmVerdict{}, fmt.Errorf("request timed out after %s: %w", r.timeout, err)
	case err != nil:
		return llmVerdict{}, fmt.Errorf("request to model %s: %w", r.model, err)
	case len(resp.Choices) == 0:
		return llmVerdict{}, fmt.Errorf("%w: the response has no choices", ErrInvalidReply)
	}
	return parseVerdict(resp.Choices[0].Message.Content)
}

// parseVerdict decodes a reply. It accepts the JSON object inside a Markdown code fence,
// which some models add even when asked for JSON only.
func parseVerdict(content string) (llmVerdict, error) {
	text := strings.TrimSpace(content)
	if strings.HasPrefix(text, "```") {
		text = strings.TrimPrefix(strings.TrimPrefix(text, "```json"), "```")
		text = strings.TrimSpace(strings.TrimSuffix(text, "```"))
	}

	var v llmVerdict
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return llmVerdict{}, fmt.Errorf("%w: %q is not a JSON object: %w", ErrInvalidReply, clip(content), err)
	}
	switch v.Verdict {
	case change.Approve, change.Reject, change.Hold:
	default:
		return llmVerdict{}, fmt.Errorf("%w: verdict %q is not approve, reject or hold", ErrInvalidReply, v.Verdict)
	}
	v.Reason = strings.TrimSpace(v.Reason)
	if v.Reason == "" {
		return llmVerdict{}, fmt.Errorf("%w: the reason is empty", ErrInvalidReply)
	}
	return v, nil
}

// severity orders verdicts from the least to the most cautious.
func severity(v change.Verdict) int {
	switch v {
	case change.Approve:
		return 0
	case change.Skip:
		return 1
	case change.Hold:
		return 2
	default:
		return 3
	}
}

// clip shortens a reply for an error message.
func clip(s string) string {
	const maxLen = 200
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "…"
}
