package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
)

// rollbackTimeout bounds one host's switch of one target: a symlink rename.
const rollbackTimeout = config.DefaultRollbackTimeout

// RollbackInput is the Rollback workflow's argument. Request.Action is
// ActionRollback; Request.From is unused.
type RollbackInput struct {
	Request Request `json:"request"`
	// To is the transaction whose release to switch to; empty means the
	// release before the current one, on every host.
	To string `json:"to,omitempty"`
	// HostTimeout bounds how long a host has to pick up its rollback.
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
	// Signature proves who asked, as for a release (SignedPayload).
	Signature *auth.Signature `json:"signature,omitempty"`
}

// RollbackHostInput is the Rollback activity's argument.
type RollbackHostInput struct {
	// Transaction is the rollback's own id: a retry of the same rollback
	// switches to the same release instead of one further back.
	Transaction string `json:"transaction"`
	Project     string `json:"project"`
	Env         string `json:"env"`
	Target      string `json:"target"`
	To          string `json:"to,omitempty"`
	// Order is the manager's signed order for this rollback (action
	// rollback): the installer refuses a rollback without one it trusts.
	Order *auth.SignedOrder `json:"order,omitempty"`
}

// order is the order (unsigned) for in on host.
func (in RollbackHostInput) order(host string) auth.Order {
	return auth.Order{Transaction: in.Transaction, Host: host, Env: in.Env, Target: in.Target, Action: OrderRollback, To: in.To}
}

// RollbackHostResult is what one host did for one named target.
type RollbackHostResult struct {
	Host string `json:"host"`
	// From and To are the transactions current pointed at before and after.
	From    string `json:"from"`
	To      string `json:"to"`
	Path    string `json:"path"`
	Attempt int32  `json:"attempt"`
}

// RollbackRecord is one (host, target) a failed rollout put back.
type RollbackRecord struct {
	Host   string    `json:"host"`
	Target string    `json:"target"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Time   time.Time `json:"time"`
}

// Rollback is a rollback transaction: on every host registered for the
// environment and each named target of the project, switch the release
// behavior's current back to the release before it, or to the release of
// transaction To. Its workflow id is the transaction id; it answers the
// status and detail queries as Release does (Request.Action "rollback") and
// sets the same search attributes, so status, history and list show it.
// It ends ROLLBACK_COMPLETED, ROLLBACK_FAILED (some host could not switch;
// the others did), REJECTED (unknown project or environment, no host) or
// CANCELLED.
func Rollback(ctx workflow.Context, in RollbackInput) (*Detail, error) {
	ctx = withBaseline(ctx)
	in.Request.Action = ActionRollback
	rb := &rollback{in: in}
	rb.gate.d = &rb.d
	rb.resumed, rb.resumedDetail = StatusStarted, "locks granted; rolling back"
	rb.d.Transaction = workflow.GetInfo(ctx).WorkflowExecution.ID
	rb.d.Request = in.Request
	rb.d.Started = workflow.Now(ctx)
	run, err := setTransactionHandlers(ctx, &rb.d, &rb.gate)
	if err != nil {
		return nil, err
	}
	return rb.run(run)
}

type rollback struct {
	in RollbackInput
	d  Detail
	// gate: the approval and locks a release into the environment needs.
	gate
}

// rollbackPolicyVersion marks rollbacks that obey the environment's rules
// as a release does: STARTED is recorded once the manager has checked who
// asked (naming them), then approval with four eyes where the environment
// asks for it, then the lock of every named target.
const rollbackPolicyVersion = "rollback-policy"

func (rb *rollback) run(ctx workflow.Context) (*Detail, error) {
	req := rb.in.Request
	to := "the release before the current one"
	if rb.in.To != "" {
		to = "the release of " + rb.in.To
	}
	v := changeVersion(ctx, rollbackPolicyVersion)
	if v == workflow.DefaultVersion {
		rb.setStatus(ctx, StatusStarted, fmt.Sprintf("rollback of %s in %s to %s requested by %s", req.Project, req.Env, to, orAnonymous(req.Requester)))
	} else {
		rb.d.Status = StatusStarted
	}
	// A rollback changes what runs in the environment: Authorize checks
	// it as the rollback action (asked as "install", the name runs have
	// always sent), and its signature is good for this one run.
	actx := withManagerActivity(ctx)
	info := workflow.GetInfo(ctx)
	var who string
	err := workflow.ExecuteActivity(actx, AuthorizeActivity, AuthorizeInput{
		Transaction: rb.d.Transaction,
		Action:      "install",
		Project:     req.Project,
		Env:         req.Env,
		Payload:     RollbackStart(rb.d.Transaction, rb.in).Payload(),
		Signature:   rb.in.Signature,
		Claimed:     req.Requester,
		RunID:       info.WorkflowExecution.RunID,
		RunStarted:  info.WorkflowStartTime,
	}).Get(actx, &who)
	if err != nil {
		if v != workflow.DefaultVersion {
			// Who asked is unknown: the claim is not recorded as a fact.
			rb.d.Request.Requester = ""
		}
		return rb.end(ctx, err, StatusRejected)
	}
	if v == workflow.DefaultVersion {
		if who != "" && who != req.Requester {
			rb.d.Request.Requester = who
			if err := workflow.UpsertTypedSearchAttributes(ctx, saRequester.ValueSet(who)); err != nil {
				workflow.GetLogger(ctx).Warn("search attributes not updated", "error", err)
			}
		}
	} else {
		if who != "" {
			rb.d.Request.Requester = who
		}
		rb.setStatus(ctx, StatusStarted, fmt.Sprintf("rollback of %s in %s to %s requested by %s", req.Project, req.Env, to, orAnonymous(rb.d.Request.Requester)))
	}
	hosts, err := registeredHosts(ctx, req.Project, req.Env)
	if err != nil {
		return rb.end(ctx, err, StatusRejected)
	}
	if len(hosts.Unanswered) > 0 {
		appendEvent(ctx, &rb.d, "", unansweredEvent(hosts.Unanswered))
	}
	if v != workflow.DefaultVersion {
		rb.authOn, rb.approval = hosts.AuthOn, hosts.Approval
		if rb.approval.Required {
			if err := rb.awaitApproval(ctx); err != nil {
				return rb.end(ctx, err, StatusRejected)
			}
		}
		if err := rb.acquireLocks(ctx, hosts.Lock, req.Env, sortedKeys(hosts.Hosts), hosts.LockTimeout); err != nil {
			if isType(err, ErrSuperseded) {
				return rb.end(ctx, err, StatusSuperseded)
			}
			return rb.end(ctx, err, StatusRejected)
		}
	}
	return rb.rollBackHosts(ctx, hosts)
}

// rollBackHosts rolls back every host target of hosts at once and ends
// the rollback.
func (rb *rollback) rollBackHosts(ctx workflow.Context, hosts HostsResult) (*Detail, error) {
	req := rb.in.Request
	hostTimeout := orDefault(rb.in.HostTimeout, orDefault(hosts.HostTimeout, config.DefaultHostTimeout))
	opts := workflow.ActivityOptions{
		ScheduleToStartTimeout: hostTimeout,
		StartToCloseTimeout:    rollbackTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: []string{ErrRollbackUnsupported, ErrReleaseNotFound, ErrUnknownTarget},
		},
	}
	var calls []hostCall
	for _, t := range hosts.Targets {
		for _, h := range hosts.Hosts[t] {
			rb.d.Installs = append(rb.d.Installs, InstallRecord{Host: h, Target: t, State: InstallInstalling, Started: workflow.Now(ctx)})
			in := RollbackHostInput{Transaction: rb.d.Transaction, Project: req.Project, Env: req.Env, Target: t, To: rb.in.To}
			in.Order = signOrder(ctx, in.order(h), orderValid(opts))
			calls = append(calls, hostCall{host: h, activity: RollbackActivity, input: in})
		}
	}
	var failed []string
	canceled := false
	fanOut(ctx, "rollback", opts, calls, func(i int, f hostResult) {
		rec := &rb.d.Installs[i]
		var res RollbackHostResult
		err := f.Get(ctx, &res)
		rec.Ended = workflow.Now(ctx)
		switch {
		case err == nil:
			rec.State = InstallInstalled
			rec.Path = res.Path
			rec.Attempts = res.Attempt
			rb.hostEvent(ctx, fmt.Sprintf("rolled back %s on %s from %s to %s", rec.Target, rec.Host, orNone(res.From), res.To))
		case temporal.IsCanceledError(err):
			canceled = true
			rec.State = InstallCancelled
			rec.Error = "cancelled"
		default:
			rec.State = InstallFailedS
			rec.Error = installError(err, rec.Host, hostTimeout)
			failed = append(failed, fmt.Sprintf("%s/%s: %s", rec.Host, rec.Target, rec.Error))
			rb.hostEvent(ctx, fmt.Sprintf("rollback of %s on %s failed: %s", rec.Target, rec.Host, rec.Error))
		}
	})
	if canceled || ctx.Err() != nil {
		return rb.end(ctx, temporal.NewCanceledError(), StatusCancelled)
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return rb.end(ctx, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("rollback failed on %d of %d host targets: %s", len(failed), len(calls), joinCapped(failed, "; ", maxListed)),
			string(StatusRollbackFailed), nil), StatusRollbackFailed)
	}
	rb.unlock(ctx)
	rb.setStatus(ctx, StatusRollbackCompleted, fmt.Sprintf("rolled back on %d host target(s)", len(calls)))
	rb.d.Ended = workflow.Now(ctx)
	return rb.d.answer(), nil
}

// end records a failure and fails the workflow with the status as its
// type and the detail as its details, so a closed rollback stays readable.
func (rb *rollback) end(ctx workflow.Context, err error, status Status) (*Detail, error) {
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		rb.d.Reason = cancelledReason(&rb.d)
		rb.unlock(dctx)
		rb.setStatus(dctx, StatusCancelled, rb.d.Reason)
		rb.d.Ended = workflow.Now(dctx)
		return rb.d.answer(), temporal.NewCanceledError(rb.d.Reason)
	}
	rb.d.Reason = reason(err, ReleaseInput{Request: rb.in.Request}, status)
	rb.unlock(ctx)
	rb.setStatus(ctx, status, rb.d.Reason)
	rb.d.Ended = workflow.Now(ctx)
	return rb.d.answer(), temporal.NewNonRetryableApplicationError(rb.d.Reason, string(status), nil, rb.d.answer())
}

// hostEvent is release.hostEvent for a rollback.
func (rb *rollback) hostEvent(ctx workflow.Context, detail string) {
	if len(rb.d.Installs) <= MaxDetailInstalls {
		rb.event(ctx, "", detail)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
