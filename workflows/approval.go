package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/internal/auth"
	"github.com/relman/relman/rollout"
)

// Approval is an environment's rule for releases into it.
type Approval struct {
	Required bool `json:"required,omitempty"`
	// FourEyes: the requester cannot approve their own release.
	FourEyes bool          `json:"four_eyes,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"` // default 24h
}

// ApprovalDecision is the argument of the approve and reject updates.
type ApprovalDecision struct {
	// By is who decides: the caller's identity. With authentication on the
	// manager replaces it with whoever signed the decision.
	By        string          `json:"by"`
	Comment   string          `json:"comment,omitempty"`
	Signature *auth.Signature `json:"signature,omitempty"`
}

// ApprovalRecord is the decision a release got, in its detail.
type ApprovalRecord struct {
	Decision string    `json:"decision"` // approved, rejected, timed out
	By       string    `json:"by,omitempty"`
	Comment  string    `json:"comment,omitempty"`
	Time     time.Time `json:"time"`
}

// setApprovalHandlers registers the approve and reject updates. Their
// validators refuse a decision unless the release awaits one, so an update
// on any other release leaves no trace in its history.
func (r *release) setApprovalHandlers(ctx workflow.Context) error {
	for _, u := range []struct {
		name    string
		approve bool
	}{{ApproveUpdate, true}, {RejectUpdate, false}} {
		approve := u.approve
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, d ApprovalDecision) (string, error) {
				if r.authOn {
					who, err := r.authorizeDecision(ctx, d, approve)
					if err != nil {
						return "", err
					}
					d.By = who
					if err := r.validateDecision(d, approve); err != nil {
						return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrRejected, nil)
					}
				}
				rec := &ApprovalRecord{Decision: "approved", By: d.By, Comment: d.Comment, Time: workflow.Now(ctx)}
				if !approve {
					rec.Decision = "rejected"
				}
				r.decision = rec
				return fmt.Sprintf("%s %s by %s", r.d.Transaction, rec.Decision, d.By), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, d ApprovalDecision) error {
				return r.validateDecision(d, approve)
			}},
		)
		if err != nil {
			return err
		}
	}
	return nil
}

// authorizeDecision asks the manager who signed the decision and whether
// they may approve releases of this project into this environment.
func (r *release) authorizeDecision(ctx workflow.Context, d ApprovalDecision, approve bool) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: []string{ErrRejected}},
	})
	var who string
	err := workflow.ExecuteActivity(ctx, AuthorizeActivity, AuthorizeInput{
		Transaction: r.d.Transaction,
		Action:      "approve",
		Project:     r.d.Request.Project,
		Env:         r.d.Request.Env,
		Payload:     DecisionPayload(r.d.Transaction, approve, d),
		Signature:   d.Signature,
		Claimed:     d.By,
	}).Get(ctx, &who)
	return who, err
}

func (r *release) validateDecision(d ApprovalDecision, approve bool) error {
	if !r.awaiting || r.decision != nil {
		return fmt.Errorf("transaction %s is %s, not awaiting approval", r.d.Transaction, r.d.Status)
	}
	if strings.TrimSpace(d.By) == "" {
		return fmt.Errorf("a decision on %s needs the name of who decides", r.d.Transaction)
	}
	if approve && r.approval.FourEyes && d.By == r.d.Request.Requester {
		return fmt.Errorf("%s requested transaction %s and cannot approve it too (four eyes); ask someone else to approve it", d.By, r.d.Transaction)
	}
	return nil
}

// awaitApproval waits in AWAITING_APPROVAL for a decision, up to the
// environment's approval timeout.
func (r *release) awaitApproval(ctx workflow.Context) error {
	timeout := orDefault(r.approval.Timeout, rollout.DefaultApprovalTimeout)
	r.awaiting = true
	defer func() { r.awaiting = false }()
	rule := "approval"
	if r.approval.FourEyes {
		rule = "approval by someone other than " + orAnonymous(r.d.Request.Requester)
	}
	r.d.Waiting = fmt.Sprintf("%s within %s (relman approve %s)", rule, timeout, r.d.Transaction)
	r.setStatus(ctx, StatusAwaitingApproval, "waiting for "+r.d.Waiting)
	r.notifyAsync(ctx)
	ok, err := workflow.AwaitWithTimeout(ctx, timeout, func() bool { return r.decision != nil })
	r.d.Waiting = ""
	if err != nil {
		return err
	}
	if !ok {
		r.d.Approval = &ApprovalRecord{Decision: "timed out", Time: workflow.Now(ctx)}
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("nobody approved transaction %s within %s", r.d.Transaction, timeout), ErrRejected, nil)
	}
	d := r.decision
	r.d.Approval = d
	if d.Decision != "approved" {
		msg := fmt.Sprintf("rejected by %s", d.By)
		if d.Comment != "" {
			msg += ": " + d.Comment
		}
		return temporal.NewNonRetryableApplicationError(msg, ErrRejected, nil)
	}
	msg := "approved by " + d.By
	if d.Comment != "" {
		msg += ": " + d.Comment
	}
	r.event(ctx, "", msg)
	return nil
}
