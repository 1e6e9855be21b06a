package workflows

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
)

// OrderAction values of auth.Order.Action: what a signed order lets a host
// do. A health check runs inside the install it checks, under the
// install's order.
const (
	OrderInstall  = "install"
	OrderRollback = "rollback"
)

// orderMargin is what an order's validity adds to the longest its
// activity may take: retry backoffs and the clocks of the manager and the
// host disagreeing.
const orderMargin = config.DefaultOrderMargin

// OrderSigner signs the orders a manager's workflows send hosts. The
// manager's worker holds it in memory and hands it to each workflow
// through its context (WithOrderSigner, from a worker interceptor), so the
// key never enters a payload or a history. ed25519 signatures are
// deterministic, so signing in workflow code replays to the same bytes
// and needs no activity.
type OrderSigner struct {
	Key ed25519.PrivateKey
	// Namespace and Queue are the manager's (config temporal.namespace
	// and manager_queue); every order binds them.
	Namespace string
	Queue     string
}

type orderSignerKey struct{}

// runSigner is a signer for one workflow execution: seq numbers its
// orders, so two orders of one run never share an id.
type runSigner struct {
	s   *OrderSigner
	seq int
}

// WithOrderSigner gives the workflow of ctx the manager's signer; called
// once per workflow execution (and again when a worker replays it from the
// start), so the orders' sequence restarts with it.
func WithOrderSigner(ctx workflow.Context, s *OrderSigner) workflow.Context {
	if s == nil || len(s.Key) != ed25519.PrivateKeySize {
		return ctx
	}
	return workflow.WithValue(ctx, orderSignerKey{}, &runSigner{s: s})
}

// OrderSigning is the manager worker's interceptor that gives every
// workflow it runs s (WithOrderSigner). Each manager worker has its own,
// so managers with different keys can share a process.
func OrderSigning(s *OrderSigner) interceptor.WorkerInterceptor {
	return &orderSigning{s: s}
}

type orderSigning struct {
	interceptor.WorkerInterceptorBase
	s *OrderSigner
}

func (o *orderSigning) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &orderSigningInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, s: o.s}
}

type orderSigningInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	s *OrderSigner
}

func (i *orderSigningInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	return i.Next.ExecuteWorkflow(WithOrderSigner(ctx, i.s), in)
}

// signOrder signs o for the workflow of ctx, valid for the next valid
// (plus orderMargin). Its id, run, namespace, queue and expiry are set
// here, all from the workflow's own deterministic state: the run id, the
// host, target and action, and the run's order sequence; the expiry from
// workflow.Now. Without a signer (workflow unit tests, a replayer) it
// returns nil and hosts refuse the order.
//
// auth.SignOrder encodes the order with encoding/json (fields in
// declaration order) and signs it with ed25519 (deterministic): the same
// bytes on every replay, which workflowcheck cannot see through json's
// cache of types.
//
//workflowcheck:ignore
func signOrder(ctx workflow.Context, o auth.Order, valid time.Duration) *auth.SignedOrder {
	rs, _ := ctx.Value(orderSignerKey{}).(*runSigner)
	if rs == nil {
		return nil
	}
	info := workflow.GetInfo(ctx)
	if resetRun(info) {
		// A reset run replays a transaction past its plan, signature and
		// approval (`temporal workflow reset`, by anyone with namespace
		// access): it gets no orders, so no host runs it again.
		workflow.GetLogger(ctx).Error("a reset run of a transaction gets no host orders; start a new release instead", "host", o.Host, "target", o.Target, "original_run", info.OriginalRunID)
		return nil
	}
	rs.seq++
	o.RunID = info.WorkflowExecution.RunID
	o.Namespace, o.Queue = rs.s.Namespace, rs.s.Queue
	o.Expires = workflow.Now(ctx).Add(valid + orderMargin).UTC()
	o.ID = orderID(o, rs.seq)
	s, err := auth.SignOrder(rs.s.Key, o)
	if err != nil {
		// Only a bad key or an empty id fail, neither of which can
		// happen here; the host refuses the unsigned order, naming it.
		workflow.GetLogger(ctx).Error("order not signed", "host", o.Host, "target", o.Target, "error", err)
		return nil
	}
	return &s
}

// resetRun reports whether the run was made by a reset of an earlier run
// of its workflow, rather than started.
func resetRun(info *workflow.Info) bool {
	return info.OriginalRunID != "" && info.OriginalRunID != info.WorkflowExecution.RunID
}

// orderID names an order: a hash of the run, transaction, host, target,
// action and the run's sequence number, so it is the same on every replay
// and differs between any two orders.
func orderID(o auth.Order, seq int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%s\x00%d", o.RunID, o.Transaction, o.Host, o.Target, o.Action, seq))
	return "o-" + hex.EncodeToString(h[:16])
}

// orderValid is how long an order for an activity with these options must
// stay good: every attempt may wait its schedule-to-start timeout for the
// host and then run its start-to-close timeout.
func orderValid(o workflow.ActivityOptions) time.Duration {
	attempts := time.Duration(1)
	if o.RetryPolicy != nil && o.RetryPolicy.MaximumAttempts > 0 {
		attempts = time.Duration(o.RetryPolicy.MaximumAttempts)
	}
	return attempts * (o.ScheduleToStartTimeout + o.StartToCloseTimeout)
}
