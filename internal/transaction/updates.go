// Updates sent to a running transaction (approve, reject, cancel) and the
// plan asked of the manager's desk: each answers at once, or refuses with
// the reason.

package transaction

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/workflows"
)

// ErrDecisionRefused: the release refused an approve or reject (it is not
// awaiting approval, or four eyes forbid the approver).
var ErrDecisionRefused = errors.New("decision refused")

// Decide approves (approve true) or rejects a release awaiting approval, as
// by. It returns the release's answer.
func Decide(ctx context.Context, c client.Client, txid string, approve bool, d workflows.ApprovalDecision) (string, error) {
	name := workflows.RejectUpdate
	if approve {
		name = workflows.ApproveUpdate
	}
	return askRunning(ctx, c, txid, name, d, func(msg string) error { return refused(msg) })
}

// askRunning sends a running transaction the update name with arg and
// returns its answer; an answer that refuses becomes refusal(its text).
func askRunning(ctx context.Context, c client.Client, txid, name string, arg any, refusal func(string) error) (string, error) {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   txid,
		UpdateName:   name,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var msg string
		if err = h.Get(ctx, &msg); err == nil {
			return msg, nil
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return "", fmt.Errorf("no running transaction %s; it has ended or never existed (see `relman status %s`): %w", txid, txid, ErrNotFound)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return "", refusal(app.Message())
	}
	return "", fmt.Errorf("%s %s: %w", name, txid, err)
}

// Plan asks the Desk of the manager on queue what a request would do,
// without doing it: the manager's Plan activity and the batches. No
// workflow execution is started for it. The signature is bound to a
// plan-<uuid> id, as it was when each plan was a PlanOnly workflow.
func Plan(ctx context.Context, c client.Client, queue string, req workflows.Request, sign *Signer) (*workflows.PlanOnlyResult, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	id := "plan-" + u.String()
	in := workflows.PlanInput{Request: req, Transaction: id, Workflow: workflows.PlanOnlyWorkflowName}
	if sign != nil {
		in.Signature = sign.Sign(in.Signed().Payload())
	}
	var res workflows.PlanOnlyResult
	if err := ask(ctx, c, queue, workflows.PlanUpdate, in, &res); err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return nil, planRefused(app.Message())
		}
		return nil, fmt.Errorf("plan %s: %w", req.Project, err)
	}
	return &res, nil
}

// ErrPlanRefused: the manager refused a plan (its request is not one it
// would run: unknown environment, no host, not allowed); the error's text
// is the manager's.
var ErrPlanRefused = errors.New("plan refused")

type planRefused string

func (r planRefused) Error() string        { return string(r) }
func (r planRefused) Is(target error) bool { return target == ErrPlanRefused }

// refused is a decision the release refused; its text is the release's.
type refused string

func (r refused) Error() string        { return string(r) }
func (r refused) Is(target error) bool { return target == ErrDecisionRefused }

// ErrCancelRefused: the transaction refused a cancel (it has ended, or the
// policy does not let the caller cancel it).
var ErrCancelRefused = errors.New("cancel refused")

// Cancel asks a transaction to stop through its cancel update: the manager
// checks who signed the request and that the policy lets them cancel, and
// records them. It returns the transaction's answer once the cancel is
// under way; the transaction ends CANCELLED shortly after.
func Cancel(ctx context.Context, c client.Client, txid string, r workflows.CancelRequest) (string, error) {
	return askRunning(ctx, c, txid, workflows.CancelUpdate, r, func(msg string) error { return cancelRefused(msg) })
}

// cancelRefused is a cancel the transaction refused; its text is the
// transaction's.
type cancelRefused string

func (r cancelRefused) Error() string        { return string(r) }
func (r cancelRefused) Is(target error) bool { return target == ErrCancelRefused }
