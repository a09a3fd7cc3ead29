package validate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

const testModel = "test-model"

// fakeLLM is an OpenAI-compatible chat completions endpoint on 127.0.0.1. reply turns
// the review request of each call into the assistant's message, or into an HTTP status
// with a body when status is not 0.
type fakeLLM struct {
	t     *testing.T
	srv   *httptest.Server
	reply func(req reviewRequest) (status int, content string)
	delay time.Duration

	mu          sync.Mutex
	bodies      []string
	requests    []reviewRequest
	inFlight    int
	maxInFlight int
	authHeaders []string
}

func newFakeLLM(t *testing.T, reply func(reviewRequest) (int, string)) *fakeLLM {
	f := &fakeLLM{t: t, reply: reply}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	var chat openai.ChatCompletionRequest
	if err := json.Unmarshal(body, &chat); err != nil || len(chat.Messages) != 2 {
		http.Error(w, "invalid chat request", http.StatusBadRequest)
		return
	}
	var req reviewRequest
	if err := json.Unmarshal([]byte(chat.Messages[1].Content), &req); err != nil {
		http.Error(w, "user message is not a review request", http.StatusBadRequest)
		return
	}

	f.mu.Lock()
	f.bodies = append(f.bodies, string(body))
	f.requests = append(f.requests, req)
	f.authHeaders = append(f.authHeaders, r.Header.Get("Authorization"))
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()

	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	status, content := f.reply(req)
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, content)
		return
	}
	resp := openai.ChatCompletionResponse{
		ID: "cmpl-1", Object: "chat.completion", Model: chat.Model,
		Choices: []openai.ChatCompletionChoice{{
			Message:      openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: content},
			FinishReason: openai.FinishReasonStop,
		}},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *fakeLLM) calls() []reviewRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]reviewRequest(nil), f.requests...)
}

// llmConfig returns a configuration whose reviewer reads crm.customers.notes through f.
func llmConfig(f *fakeLLM, rules ...config.Rule) *config.Config {
	cfg := baseConfig(rules...)
	cfg.LLM = config.LLM{
		Enabled: true, BaseURL: f.srv.URL + "/v1", Model: testModel, APIKeyEnv: "TEST_LLM_KEY",
		Columns: []string{"crm.customers.notes"}, Timeout: 2 * time.Second, OnError: "hold",
		MaxConcurrency: 4, CacheSize: 100,
	}
	return cfg
}

var testEnv = func(name string) (string, bool) {
	if name == "TEST_LLM_KEY" {
		return "sk-test", true
	}
	return "", false
}

// verdictJSON is a well-formed reply.
func verdictJSON(verdict, reason string) string {
	return fmt.Sprintf(`{"verdict": %q, "reason": %q}`, verdict, reason)
}

// notesChange sets the notes of alice to notes and changes nothing else.
func notesChange(notes string) change.Event {
	n := alice()
	n[5] = change.TextValue(notes)
	return update(alice(), n)
}

func TestLLMVerdicts(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		content     string
		onError     string
		wantVerdict change.Verdict
		wantReason  string
	}{
		{"approve", 0, verdictJSON("approve", "an ordinary note"), "hold", change.Approve, "crm.customers.notes: an ordinary note"},
		{"reject", 0, verdictJSON("reject", "contains a card number"), "hold", change.Reject, "crm.customers.notes: contains a card number"},
		{"hold", 0, verdictJSON("hold", "looks like test data"), "hold", change.Hold, "looks like test data"},
		{"fenced JSON", 0, "```json\n" + verdictJSON("reject", "abusive") + "\n```", "hold", change.Reject, "abusive"},
		{"prose reply", 0, "This note looks fine to me.", "hold", change.Hold, "is not a JSON object"},
		{"unknown verdict", 0, verdictJSON("maybe", "unsure"), "hold", change.Hold, `verdict "maybe" is not approve, reject or hold`},
		{"empty reason", 0, verdictJSON("approve", " "), "hold", change.Hold, "the reason is empty"},
		{"skip verdict", 0, verdictJSON("skip", "not mine"), "hold", change.Hold, `verdict "skip"`},
		{"server error", http.StatusInternalServerError, `{"error": {"message": "overloaded", "type": "server_error"}}`, "hold", change.Hold, "status code: 500"},
		{"unauthorized", http.StatusUnauthorized, `{"error": {"message": "bad key", "type": "invalid_request_error"}}`, "hold", change.Hold, "bad key"},
		{"error with on_error approve", http.StatusBadGateway, `{"error": {"message": "down"}}`, "approve", change.Approve, "llm.on_error decides approve"},
		{"error with on_error reject", http.StatusServiceUnavailable, `{"error": {"message": "down"}}`, "reject", change.Reject, "review failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeLLM(t, func(reviewRequest) (int, string) { return tt.status, tt.content })
			cfg := llmConfig(f)
			cfg.LLM.OnError = tt.onError
			cfg.LLM.Timeout = time.Second
			a := newAgent(t, cfg, WithLookupEnv(testEnv))

			got := validateOne(t, a, notesChange("call me at home"))
			if got.Verdict != tt.wantVerdict {
				t.Errorf("verdict = %s, want %s (reason %q)", got.Verdict, tt.wantVerdict, got.Reason)
			}
			if got.DecidedBy != "llm:"+testModel {
				t.Errorf("decided by = %q, want llm:%s", got.DecidedBy, testModel)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.wantReason)
			}
			n := len(f.calls())
			if tt.status >= http.StatusInternalServerError && n < 2 {
				t.Errorf("endpoint got %d requests, want the 5xx status retried", n)
			}
			if tt.status < http.StatusInternalServerError && n != 1 {
				t.Errorf("endpoint got %d requests, want 1", n)
			}
		})
	}
}

func TestLLMRetriesBusyEndpoint(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			calls := 0
			f := newFakeLLM(t, func(reviewRequest) (int, string) {
				calls++ // the fake serves one request at a time here
				if calls <= 2 {
					return status, `{"error": {"message": "busy"}}`
				}
				return 0, verdictJSON("approve", "fine after retries")
			})
			a := newAgent(t, llmConfig(f), WithLookupEnv(testEnv))

			got := validateOne(t, a, notesChange("retry me"))
			if got.Verdict != change.Approve {
				t.Errorf("verdict = %s (%q), want approve from the third request", got.Verdict, got.Reason)
			}
			if n := len(f.calls()); n != 3 {
				t.Errorf("endpoint got %d requests, want 3", n)
			}
		})
	}
}

func TestLLMTimeout(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("approve", "late") })
	f.delay = 5 * time.Second
	cfg := llmConfig(f)
	cfg.LLM.Timeout = 100 * time.Millisecond
	a := newAgent(t, cfg, WithLookupEnv(testEnv))

	started := time.Now()
	got := validateOne(t, a, notesChange("slow"))
	elapsed := time.Since(started)

	if got.Verdict != change.Hold {
		t.Errorf("verdict = %s, want hold", got.Verdict)
	}
	if !strings.Contains(got.Reason, "timed out after 100ms") {
		t.Errorf("reason = %q, want the timeout named", got.Reason)
	}
	if elapsed > 2*time.Second {
		t.Errorf("Validate took %s, want about the 100ms timeout", elapsed)
	}
}

func TestLLMSendsOnlyConfiguredColumns(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("approve", "fine") })
	a := newAgent(t, llmConfig(f), WithLookupEnv(testEnv))

	old := row("2", "Alice Secretname", "1 Hidden Road", "12345", "10.50", "old note", "crm-app", "t")
	n := row("2", "Alice Secretname", "9 Private Lane", "99999", "77.25", "new note", "crm-app", "t")
	if got := validateOne(t, a, update(old, n)); got.Verdict != change.Approve {
		t.Fatalf("decision = %+v, want approve", got)
	}

	if len(f.bodies) != 1 {
		t.Fatalf("endpoint got %d requests, want 1", len(f.bodies))
	}
	body := f.bodies[0]
	for _, secret := range []string{"Secretname", "Hidden Road", "Private Lane", "99999", "77.25", "old note", "crm-app"} {
		if strings.Contains(body, secret) {
			t.Errorf("request body contains %q, a value of a column that is not reviewed:\n%s", secret, body)
		}
	}
	want := reviewRequest{Table: "crm.customers", Op: "update", Column: "notes", Value: "new note"}
	if f.requests[0] != want {
		t.Errorf("review request = %+v, want %+v", f.requests[0], want)
	}
	if f.authHeaders[0] != "Bearer sk-test" {
		t.Errorf("Authorization = %q, want the key from TEST_LLM_KEY", f.authHeaders[0])
	}
}

func TestLLMSkipsUnreviewedChanges(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("reject", "no") })
	a := newAgent(t, llmConfig(f, config.Rule{Name: "skip-bot", When: "actor == 'etl-bot'", Action: "skip"}),
		WithLookupEnv(testEnv))

	bot := notesChange("from the bot")
	bot.New[6] = change.TextValue("etl-bot")
	nullNotes := notesChange("")
	nullNotes.New[5] = change.NullValue()
	toast := notesChange("")
	toast.New[5] = change.Value{Kind: change.Unchanged}

	tests := []struct {
		name          string
		ev            change.Event
		wantDecidedBy string
	}{
		{"notes unchanged", update(alice(), alice()), DefaultDecider},
		{"decided by a rule", bot, "rule:skip-bot"},
		{"notes set to null", nullNotes, DefaultDecider},
		{"notes unchanged TOAST", toast, DefaultDecider},
		{"delete", change.Event{Op: change.OpDelete, Relation: customers, Old: alice()}, DefaultDecider},
		{"other table", change.Event{Op: change.OpInsert, Relation: orders, New: row("1", "2")}, DefaultDecider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validateOne(t, a, tt.ev); got.DecidedBy != tt.wantDecidedBy {
				t.Errorf("decided by = %q, want %q", got.DecidedBy, tt.wantDecidedBy)
			}
		})
	}
	if n := len(f.calls()); n != 0 {
		t.Errorf("endpoint got %d requests, want none", n)
	}
}

func TestLLMCache(t *testing.T) {
	f := newFakeLLM(t, func(req reviewRequest) (int, string) {
		if req.Value == "broken" {
			return http.StatusBadRequest, `{"error": {"message": "rejected"}}` // not retried
		}
		return 0, verdictJSON("approve", "fine")
	})
	a := newAgent(t, llmConfig(f), WithLookupEnv(testEnv))

	for range 3 {
		validateOne(t, a, notesChange("same text"))
	}
	if n := len(f.calls()); n != 1 {
		t.Errorf("endpoint got %d requests for one value, want 1", n)
	}

	validateOne(t, a, notesChange("other text"))
	if n := len(f.calls()); n != 2 {
		t.Errorf("endpoint got %d requests for two values, want 2", n)
	}

	validateOne(t, a, notesChange("broken"))
	validateOne(t, a, notesChange("broken"))
	if n := len(f.calls()); n != 4 {
		t.Errorf("endpoint got %d requests, want 4 because failures are not cached", n)
	}
}

func TestLLMCacheOff(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("approve", "fine") })
	cfg := llmConfig(f)
	cfg.LLM.CacheSize = 0
	a := newAgent(t, cfg, WithLookupEnv(testEnv))

	validateOne(t, a, notesChange("same text"))
	validateOne(t, a, notesChange("same text"))
	if n := len(f.calls()); n != 2 {
		t.Errorf("endpoint got %d requests, want 2 without a cache", n)
	}
}

func TestLLMConcurrencyLimit(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, verdictJSON("approve", "fine") })
	f.delay = 20 * time.Millisecond
	cfg := llmConfig(f)
	cfg.LLM.MaxConcurrency = 3
	a := newAgent(t, cfg, WithLookupEnv(testEnv))

	events := make([]change.Event, 24)
	for i := range events {
		events[i] = notesChange(fmt.Sprintf("note %d", i))
	}
	tx := newTx(300, events...)
	for i := range tx.Events {
		if got := a.Validate(context.Background(), tx, &tx.Events[i]); got.Verdict != change.Approve {
			t.Fatalf("event %d: decision = %+v, want approve", i, got)
		}
	}

	if n := len(f.calls()); n != 24 {
		t.Errorf("endpoint got %d requests, want 24", n)
	}
	if f.maxInFlight > 3 {
		t.Errorf("%d requests were in flight at once, want at most 3", f.maxInFlight)
	}
}

func TestLLMSharesConcurrentRequests(t *testing.T) {
	var started atomic.Int32
	f := newFakeLLM(t, func(reviewRequest) (int, string) {
		started.Add(1)
		return 0, verdictJSON("approve", "fine")
	})
	f.delay = 200 * time.Millisecond
	cfg := llmConfig(f)
	cfg.LLM.CacheSize = 0
	cfg.LLM.MaxConcurrency = 8 // all eight reviews start together
	a := newAgent(t, cfg, WithLookupEnv(testEnv))

	events := make([]change.Event, 8)
	for i := range events {
		events[i] = notesChange("the same note")
	}
	tx := newTx(301, events...)
	a.Validate(context.Background(), tx, &tx.Events[0])
	if n := started.Load(); n != 1 {
		t.Errorf("endpoint got %d requests for 8 identical values in flight together, want 1", n)
	}
}

func TestLLMMissingKey(t *testing.T) {
	f := newFakeLLM(t, func(reviewRequest) (int, string) { return 0, "" })
	_, err := New(llmConfig(f), WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err == nil || !strings.Contains(err.Error(), "environment variable TEST_LLM_KEY") {
		t.Errorf("New error = %v, want the unset variable named", err)
	}
}

func TestParseVerdictErrors(t *testing.T) {
	for _, reply := range []string{"", "{", "[]", `{"verdict": "approve"}`, `{"verdict": 1, "reason": "x"}`} {
		if _, err := parseVerdict(reply); !errors.Is(err, ErrInvalidReply) {
			t.Errorf("parseVerdict(%q) error = %v, want ErrInvalidReply", reply, err)
		}
	}
}

func TestVerdictCacheEvicts(t *testing.T) {
	c := newVerdictCache(2)
	c.put("a", llmVerdict{Verdict: change.Approve, Reason: "a"})
	c.put("b", llmVerdict{Verdict: change.Approve, Reason: "b"})
	c.get("a") // a is now more recent than b
	c.put("c", llmVerdict{Verdict: change.Reject, Reason: "c"})

	if _, ok := c.get("b"); ok {
		t.Error("b is cached, want it evicted as the least recently used")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a was evicted, want it kept")
	}
	if v, ok := c.get("c"); !ok || v.Verdict != change.Reject {
		t.Errorf("c = %+v, %v, want reject", v, ok)
	}
	if n := c.len(); n != 2 {
		t.Errorf("len = %d, want 2", n)
	}
}

func TestLLMObserverCountsRequests(t *testing.T) {
	f := newFakeLLM(t, func(req reviewRequest) (int, string) {
		if strings.Contains(fmt.Sprint(req), "broken") {
			return http.StatusBadRequest, "{}" // not retried, so one error
		}
		return 0, verdictJSON("approve", "fine")
	})
	outcomes := map[string]int{}
	var mu sync.Mutex
	a := newAgent(t, llmConfig(f), WithLookupEnv(testEnv), WithLLMObserver(func(o string, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		outcomes[o]++
	}))
	validateOne(t, a, notesChange("all good"))
	validateOne(t, a, notesChange("broken"))
	mu.Lock()
	defer mu.Unlock()
	if outcomes["ok"] != 1 || outcomes["error"] != 1 {
		t.Errorf("observed outcomes %v, want one ok and one error", outcomes)
	}
}
