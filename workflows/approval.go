package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
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

// gate holds a transaction back until it may change an environment: a
// person's approval where the environment asks for one (approval.go), then
// the lock of every named target (lock.go). Release and Rollback embed it,
// so a rollback asks exactly what a release into the same environment
// asks.
type gate struct {
	// d is the transaction's detail, which the gate reports into.
	d *Detail
	// onAwait runs as the transaction starts waiting for approval (the
	// release notifies its webhooks).
	onAwait func(ctx workflow.Context)
	// approval is the environment's rule; awaiting is true while the
	// transaction waits for a decision; authOn: the manager authenticates,
	// so decisions must be signed.
	approval Approval
	awaiting bool
	authOn   bool
	decision *ApprovalRecord
	// locks are the lock workflow ids asked for, in order (lock.go);
	// locksByUpdate: they were asked for by update, and are given back by
	// a local activity rather than a signal from the workflow.
	locks         []string
	locksByUpdate bool
	// resumed is the status, and its detail, the transaction goes back to
	// once it had to wait for locks; zero: BUILD_COMPLETED, "locks
	// granted; installing" (a release).
	resumed       Status
	resumedDetail string
}

func (g *gate) setStatus(ctx workflow.Context, s Status, detail string) {
	recordStatus(ctx, g.d, s, detail)
}

func (g *gate) event(ctx workflow.Context, s Status, detail string) {
	appendEvent(ctx, g.d, s, detail)
}

// setApprovalHandlers registers the approve and reject updates. Their
// validators refuse a decision unless the transaction awaits one, so an
// update on any other transaction leaves no trace in its history.
func (g *gate) setApprovalHandlers(ctx workflow.Context) error {
	for _, u := range []struct {
		name    string
		approve bool
	}{{ApproveUpdate, true}, {RejectUpdate, false}} {
		approve := u.approve
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, d ApprovalDecision) (string, error) {
				if g.authOn {
					who, err := g.authorizeDecision(ctx, d, approve)
					if err != nil {
						return "", err
					}
					d.By = who
					if err := g.validateDecision(d, approve); err != nil {
						return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrRejected, nil)
					}
				}
				rec := &ApprovalRecord{Decision: "approved", By: d.By, Comment: d.Comment, Time: workflow.Now(ctx)}
				if !approve {
					rec.Decision = "rejected"
				}
				g.decision = rec
				return fmt.Sprintf("%s %s by %s", g.d.Transaction, rec.Decision, d.By), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, d ApprovalDecision) error {
				return g.validateDecision(d, approve)
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
func (g *gate) authorizeDecision(ctx workflow.Context, d ApprovalDecision, approve bool) (string, error) {
	ctx = withManagerActivity(ctx)
	var who string
	err := workflow.ExecuteActivity(ctx, AuthorizeActivity, AuthorizeInput{
		Transaction: g.d.Transaction,
		Action:      "approve",
		Project:     g.d.Request.Project,
		Env:         g.d.Request.Env,
		Payload:     DecisionPayload(g.d.Transaction, approve, d),
		Signature:   d.Signature,
		Claimed:     d.By,
	}).Get(ctx, &who)
	return who, err
}

func (g *gate) validateDecision(d ApprovalDecision, approve bool) error {
	if !g.awaiting || g.decision != nil {
		return fmt.Errorf("transaction %s is %s, not awaiting approval", g.d.Transaction, g.d.Status)
	}
	if strings.TrimSpace(d.By) == "" {
		return fmt.Errorf("a decision on %s needs the name of who decides", g.d.Transaction)
	}
	if approve && g.approval.FourEyes && d.By == g.d.Request.Requester {
		return fmt.Errorf("%s requested transaction %s and cannot approve it too (four eyes); ask someone else to approve it", d.By, g.d.Transaction)
	}
	return nil
}

// awaitApproval waits in AWAITING_APPROVAL for a decision, up to the
// environment's approval timeout.
func (g *gate) awaitApproval(ctx workflow.Context) error {
	timeout := orDefault(g.approval.Timeout, rollout.DefaultApprovalTimeout)
	g.awaiting = true
	defer func() { g.awaiting = false }()
	rule := "approval"
	if g.approval.FourEyes {
		rule = "approval by someone other than " + orAnonymous(g.d.Request.Requester)
	}
	g.d.Waiting = fmt.Sprintf("%s within %s (relman approve %s)", rule, timeout, g.d.Transaction)
	g.setStatus(ctx, StatusAwaitingApproval, "waiting for "+g.d.Waiting)
	if g.onAwait != nil {
		g.onAwait(ctx)
	}
	ok, err := workflow.AwaitWithTimeout(ctx, timeout, func() bool { return g.decision != nil })
	g.d.Waiting = ""
	if err != nil {
		return err
	}
	if !ok {
		g.d.Approval = &ApprovalRecord{Decision: "timed out", Time: workflow.Now(ctx)}
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("nobody approved transaction %s within %s", g.d.Transaction, timeout), ErrRejected, nil)
	}
	d := g.decision
	g.d.Approval = d
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
	g.event(ctx, "", msg)
	return nil
}
