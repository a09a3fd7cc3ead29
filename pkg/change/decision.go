package change

// Verdict is the outcome of validating one event.
type Verdict string

// The verdicts of the validation step.
const (
	Approve Verdict = "approve"
	Skip    Verdict = "skip"
	Reject  Verdict = "reject"
	Hold    Verdict = "hold"
)

// Decision is the verdict on one event, why it was given and who gave it: a rule name,
// llm:<model>, guard:bulk, or a user.
type Decision struct {
	Verdict   Verdict
	Reason    string
	DecidedBy string
}

// Status is the state of a change event. The strings are those stored in change_events.
type Status string

// The statuses of a change event.
const (
	StatusDetected Status = "detected"
	StatusApproved Status = "approved"
	StatusSkipped  Status = "skipped"
	StatusRejected Status = "rejected"
	StatusHeld     Status = "held"
	StatusBlocked  Status = "blocked"
	StatusSynced   Status = "synced"
	StatusUndone   Status = "undone"
	StatusFailed   Status = "failed"
)
