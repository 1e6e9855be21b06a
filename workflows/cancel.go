package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
)

// CancelRequest is the cancel update's argument: who asks a transaction
// to stop, signed as a release is.
type CancelRequest struct {
	// By is who cancels as the client claims; with authentication on the
	// manager replaces it with whoever signed the request.
	By        string          `json:"by"`
	Reason    string          `json:"reason,omitempty"`
	Signature *auth.Signature `json:"signature,omitempty"`
}

// CancelRecord is who cancelled a transaction, in its detail.
type CancelRecord struct {
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// CancelPayload is what a cancel request's signature covers; deterministic
// like SignedStart.Payload.
//
//workflowcheck:ignore
func CancelPayload(txid string, c CancelRequest) []byte {
	c.Signature = nil
	b, _ := json.Marshal(struct {
		Transaction string        `json:"transaction"`
		Cancel      CancelRequest `json:"cancel"`
	}{txid, c})
	return append([]byte("relman-cancel-v1\n"), b...)
}

// setCancelHandler registers the cancel update of a transaction whose work
// runs under a context that cancel stops. The manager's Authorize activity
// checks who signed the request and that the policy lets them cancel
// (action cancel); then the canceller is recorded in the detail and the
// history, and the transaction stops its own work as a cancel from
// Temporal would stop it (build steps killed, installs stopped before their
// swap, locks given back). The validator refuses a transaction that has
// ended, so such an update leaves no trace.
func setCancelHandler(ctx workflow.Context, d *Detail, cancel workflow.CancelFunc) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, CancelUpdate,
		func(ctx workflow.Context, c CancelRequest) (string, error) {
			actx := withManagerActivity(ctx)
			var who string
			err := workflow.ExecuteActivity(actx, AuthorizeActivity, AuthorizeInput{
				Transaction: d.Transaction,
				Action:      "cancel",
				Project:     d.Request.Project,
				Env:         d.Request.Env,
				Payload:     CancelPayload(d.Transaction, c),
				Signature:   c.Signature,
				Claimed:     c.By,
			}).Get(ctx, &who)
			if err != nil {
				return "", err
			}
			if err := cancellable(d, c); err != nil {
				// It ended or was cancelled while the request was checked.
				return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrRejected, nil)
			}
			d.Cancelled = &CancelRecord{By: who, Reason: c.Reason, Time: workflow.Now(ctx)}
			appendEvent(ctx, d, "", "cancel requested by "+withComment(who, c.Reason))
			cancel()
			return fmt.Sprintf("%s: cancel requested by %s", d.Transaction, who), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, c CancelRequest) error {
			return cancellable(d, c)
		}},
	)
}

func cancellable(d *Detail, c CancelRequest) error {
	if d.Status.Final(d.Request.Action) {
		return fmt.Errorf("transaction %s is %s already; there is nothing to cancel", d.Transaction, d.Status)
	}
	if d.Cancelled != nil {
		return fmt.Errorf("transaction %s is being cancelled already, by %s", d.Transaction, d.Cancelled.By)
	}
	if strings.TrimSpace(c.By) == "" {
		return fmt.Errorf("a cancel of %s needs the name of who cancels", d.Transaction)
	}
	return nil
}

// cancelledReason is the reason a cancelled transaction ends with. relman
// cancels only through the cancel update, which names who; a cancel
// without one came from outside relman (a Temporal cancel request by
// someone with namespace access), and is recorded as such.
func cancelledReason(d *Detail) string {
	if d.Cancelled == nil {
		return OutsideCancelReason
	}
	return "cancelled by " + withComment(d.Cancelled.By, d.Cancelled.Reason)
}

// OutsideCancelReason ends a transaction cancelled by a Temporal cancel
// request rather than relman's cancel.
const OutsideCancelReason = "cancelled from outside relman: a Temporal cancel request, which names nobody and passed no relman policy"

func withComment(s, comment string) string {
	if comment == "" {
		return s
	}
	return s + ": " + comment
}
