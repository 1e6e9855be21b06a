package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// This file holds the Release workflow's safe-rollout steps: approval, the
// lock of each (environment, named target), rolling batches with automatic
// rollback, and webhook notifications. Each applies only when the plan
// asks for it, so transactions planned before these settings existed
// replay unchanged.

// lockVersion guards the lock acquisition: releases started before it ask
// for no lock.
const lockVersion = "lock-acquisition"

// safety is the Release workflow's state for these steps.
type safety struct {
	webhooks []string
	approval Approval
	// awaiting is true while the release waits for a decision.
	awaiting bool
	// authOn: the manager authenticates, so decisions must be signed.
	authOn   bool
	decision *ApprovalRecord
	// locks are the lock workflow ids asked for, in order.
	locks []string
	// completed overrides the INSTALL_COMPLETED detail of a rollout.
	completed string
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
				if r.s.authOn {
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
				r.s.decision = rec
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
	if !r.s.awaiting || r.s.decision != nil {
		return fmt.Errorf("transaction %s is %s, not awaiting approval", r.d.Transaction, r.d.Status)
	}
	if strings.TrimSpace(d.By) == "" {
		return fmt.Errorf("a decision on %s needs the name of who decides", r.d.Transaction)
	}
	if approve && r.s.approval.FourEyes && d.By == r.d.Request.Requester {
		return fmt.Errorf("%s requested transaction %s and cannot approve it too (four eyes); ask someone else to approve it", d.By, r.d.Transaction)
	}
	return nil
}

// useSafety takes the plan's safety settings.
func (r *release) useSafety(plan Plan) {
	r.s.webhooks = plan.Webhooks
	r.s.approval = plan.Approval
}

// noteRejection keeps the webhooks a Rejected plan carries, so the
// rejection is notified too.
func (r *release) noteRejection(err error) {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		var rej PlanRejection
		if app.Details(&rej) == nil {
			r.s.webhooks = rej.Webhooks
		}
	}
}

// gate holds an install back until it may go: approved when the
// environment needs approval, then holding the lock of every named target.
func (r *release) gate(ctx workflow.Context, plan Plan) error {
	if plan.Approval.Required {
		if err := r.awaitApproval(ctx); err != nil {
			return err
		}
	}
	return r.acquireLocks(ctx, plan)
}

func (r *release) awaitApproval(ctx workflow.Context) error {
	timeout := orDefault(r.s.approval.Timeout, DefaultApprovalTimeout)
	r.s.awaiting = true
	defer func() { r.s.awaiting = false }()
	rule := "approval"
	if r.s.approval.FourEyes {
		rule = "approval by someone other than " + orAnonymous(r.d.Request.Requester)
	}
	r.d.Waiting = fmt.Sprintf("%s within %s (relman approve %s)", rule, timeout, r.d.Transaction)
	r.setStatus(ctx, StatusAwaitingApproval, "waiting for "+r.d.Waiting)
	r.notifyAsync(ctx)
	ok, err := workflow.AwaitWithTimeout(ctx, timeout, func() bool { return r.s.decision != nil })
	r.d.Waiting = ""
	if err != nil {
		return err
	}
	if !ok {
		r.d.Approval = &ApprovalRecord{Decision: "timed out", Time: workflow.Now(ctx)}
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("nobody approved transaction %s within %s", r.d.Transaction, timeout), ErrRejected, nil)
	}
	d := r.s.decision
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

// acquireLocks takes the lock of every named target in the environment, in
// sorted order so two releases never hold one each of what both need. The
// locks are Lock workflows (see lock.go): held by a workflow, not a
// process, so a crashed manager never leaves one held.
func (r *release) acquireLocks(ctx workflow.Context, plan Plan) error {
	if plan.Lock != LockWait && plan.Lock != LockRefuse {
		return nil
	}
	if workflow.GetVersion(ctx, lockVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	env := r.in.Request.Env
	queue := workflow.GetInfo(ctx).TaskQueueName
	answers := workflow.GetSignalChannel(ctx, LockAnswerSignal)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	targets := slices.Clone(plan.Targets)
	slices.Sort(targets)
	waited := false
	for _, t := range targets {
		id := LockID(queue, env, t)
		req := LockRequest{Lock: id, Env: env, Target: t, Transaction: r.d.Transaction, Refuse: plan.Lock == LockRefuse}
		// Remembered before asking: a release that ends while queued
		// leaves the queue.
		r.s.locks = append(r.s.locks, id)
		if err := workflow.ExecuteActivity(actx, RequestLockActivity, req).Get(ctx, nil); err != nil {
			return err
		}
		for {
			var a LockAnswer
			cancelled := false
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(answers, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &a) })
			sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
			sel.Select(ctx)
			if cancelled {
				return temporal.NewCanceledError()
			}
			if a.Lock != id {
				continue
			}
			if a.Granted {
				r.event(ctx, "", fmt.Sprintf("holding lock %s", id))
				break
			}
			if a.Refused {
				return temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("named target %s in %s is being released by transaction %s and the environment's lock is refuse; try again when it has ended",
						t, env, a.Holder), ErrRejected, nil)
			}
			r.d.Waiting = fmt.Sprintf("lock %s held by transaction %s", id, a.Holder)
			if a.Position > 1 {
				r.d.Waiting += fmt.Sprintf(" (%d in the queue)", a.Position)
			}
			r.setStatus(ctx, StatusWaiting, "waiting for "+r.d.Waiting)
			waited = true
		}
	}
	if waited {
		r.d.Waiting = ""
		r.setStatus(ctx, StatusBuildCompleted, "locks granted; installing")
	}
	return nil
}

// unlock gives back every lock asked for, on a context that survives
// cancellation, so an ended release never keeps one held or queued.
func (r *release) unlock(ctx workflow.Context) {
	if len(r.s.locks) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var fs []workflow.Future
	for i := len(r.s.locks) - 1; i >= 0; i-- {
		fs = append(fs, workflow.SignalExternalWorkflow(dctx, r.s.locks[i], "", LockReleaseSignal, LockRelease{Transaction: r.d.Transaction}))
	}
	for _, f := range fs {
		if err := f.Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("lock not released; the lock frees itself once it sees this release closed", "error", err)
		}
	}
	r.s.locks = nil
}

// installOptions are the options of one host's install, as the all-at-once
// install sets them.
func (r *release) installOptions(ctx workflow.Context, host string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              HostQueue(host),
		ScheduleToStartTimeout: orDefault(r.in.HostTimeout, DefaultHostTimeout),
		StartToCloseTimeout:    orDefault(r.in.InstallTimeout, DefaultInstallTimeout),
		HeartbeatTimeout:       r.heartbeat,
		WaitForCancellation:    true,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: []string{ErrChecksum, ErrUnknownTarget, ErrBadArtifact},
		},
	})
}

// rollout installs batch by batch: every named target on the hosts of a
// batch in parallel, a pause, the next batch. When more hosts have failed
// than max_failures allows, it stops: later batches stay untouched
// (skipped) and, with auto_rollback, the hosts already done go back.
func (r *release) rollout(ctx workflow.Context, plan Plan, build BuildResult) error {
	ro := plan.Rollout
	hosts := planHosts(plan)
	batches := ro.Batches(hosts)
	r.d.Rollout = &ro
	r.d.Batches = batches
	targetsOf := map[string][]string{}
	for _, t := range plan.Targets {
		for _, h := range plan.Hosts[t] {
			targetsOf[h] = append(targetsOf[h], t)
		}
	}
	for bi, b := range batches {
		for _, h := range b {
			for _, t := range targetsOf[h] {
				r.d.Installs = append(r.d.Installs, InstallRecord{Host: h, Target: t, State: InstallPending, Batch: bi + 1})
			}
		}
	}
	maxFail := ro.MaxFailureCount(len(hosts))
	var failures, failedHosts, unreachable []string
	for bi, b := range batches {
		n := bi + 1
		if bi > 0 && ro.Pause > 0 {
			r.event(ctx, "", fmt.Sprintf("pausing %s before batch %d of %d", ro.Pause, n, len(batches)))
			if err := workflow.Sleep(ctx, ro.Pause); err != nil {
				r.skipPending("not attempted: the release was cancelled")
				return temporal.NewCanceledError()
			}
		}
		if len(batches) > 1 {
			r.event(ctx, "", fmt.Sprintf("batch %d of %d: %s", n, len(batches), strings.Join(b, ", ")))
		}
		var idxs []int
		for i := range r.d.Installs {
			if r.d.Installs[i].Batch == n {
				idxs = append(idxs, i)
			}
		}
		out := r.runInstalls(ctx, idxs, build, ro.Unreachable == UnreachableSkip)
		failures = append(failures, out.failures...)
		for _, h := range out.failedHosts {
			if !slices.Contains(failedHosts, h) {
				failedHosts = append(failedHosts, h)
			}
		}
		unreachable = append(unreachable, out.unreachable...)
		if out.cancelled || ctx.Err() != nil {
			r.skipPending("not attempted: the release was cancelled")
			return temporal.NewCanceledError()
		}
		if len(failedHosts) > maxFail {
			left := r.skipPending(fmt.Sprintf("not attempted: the rollout stopped after batch %d", n))
			msg := fmt.Sprintf("rollout stopped after batch %d of %d: %d host(s) failed (%s), more than max_failures %d allows",
				n, len(batches), len(failedHosts), strings.Join(failedHosts, ", "), maxFail)
			if len(left) > 0 {
				msg += fmt.Sprintf("; %d host(s) left untouched: %s", len(left), strings.Join(left, ", "))
			}
			msg += "; " + strings.Join(failures, "; ")
			if ro.AutoRollback {
				msg += "; " + r.rollback(ctx)
			}
			return temporal.NewNonRetryableApplicationError(msg, ErrInstallFailed, nil)
		}
	}
	done := len(hosts) - len(failedHosts)
	r.s.completed = fmt.Sprintf("installed on %d host(s) in %d batch(es)", done, len(batches))
	if len(failedHosts) > 0 {
		r.s.completed += fmt.Sprintf("; %d host(s) failed within max_failures %d: %s", len(failedHosts), maxFail, strings.Join(failures, "; "))
	}
	if len(unreachable) > 0 {
		r.s.completed += fmt.Sprintf("; skipped unreachable: %s", strings.Join(unreachable, ", "))
	}
	return nil
}

type batchOutcome struct {
	failures    []string // "host/target: error"
	failedHosts []string
	unreachable []string // host/target skipped as unreachable
	cancelled   bool
}

// runInstalls runs the installs of r.d.Installs[idxs] in parallel and waits
// for all of them.
func (r *release) runInstalls(ctx workflow.Context, idxs []int, build BuildResult, skipUnreachable bool) batchOutcome {
	var out batchOutcome
	hostTimeout := orDefault(r.in.HostTimeout, DefaultHostTimeout)
	sel := workflow.NewSelector(ctx)
	for _, i := range idxs {
		rec := &r.d.Installs[i]
		rec.State = InstallInstalling
		rec.Started = workflow.Now(ctx)
		f := workflow.ExecuteActivity(r.installOptions(ctx, rec.Host), InstallActivity, InstallInput{
			Transaction: r.d.Transaction,
			Project:     r.in.Request.Project,
			Env:         r.in.Request.Env,
			Target:      rec.Target,
			Artifact:    build.Artifacts[rec.Target],
		})
		sel.AddFuture(f, func(f workflow.Future) {
			rec := &r.d.Installs[i]
			rec.Ended = workflow.Now(ctx)
			var res InstallResult
			err := f.Get(ctx, &res)
			switch {
			case err == nil:
				rec.State = InstallInstalled
				rec.Path = res.Path
				rec.Attempts = res.Attempt
				r.event(ctx, "", fmt.Sprintf("installed %s on %s at %s", rec.Target, rec.Host, res.Path))
			case temporal.IsCanceledError(err):
				out.cancelled = true
				rec.State = InstallCancelled
				rec.Error = "cancelled"
			case skipUnreachable && isUnreachable(err):
				rec.State = InstallSkipped
				rec.Error = installError(err, rec.Host, hostTimeout) + "; skipped (unreachable: skip)"
				out.unreachable = append(out.unreachable, rec.Host+"/"+rec.Target)
				r.event(ctx, "", fmt.Sprintf("skipped %s on unreachable %s", rec.Target, rec.Host))
			default:
				rec.State = InstallFailedS
				rec.Error = installError(err, rec.Host, hostTimeout)
				rec.Attempts = attemptsOf(err)
				out.failures = append(out.failures, fmt.Sprintf("%s/%s: %s", rec.Host, rec.Target, rec.Error))
				if !slices.Contains(out.failedHosts, rec.Host) {
					out.failedHosts = append(out.failedHosts, rec.Host)
				}
				r.event(ctx, "", fmt.Sprintf("install of %s on %s failed: %s", rec.Target, rec.Host, rec.Error))
			}
		})
	}
	for range idxs {
		sel.Select(ctx)
	}
	slices.Sort(out.failures)
	slices.Sort(out.failedHosts)
	return out
}

// skipPending marks every install not started as skipped and returns their
// hosts.
func (r *release) skipPending(why string) []string {
	var hosts []string
	for i := range r.d.Installs {
		rec := &r.d.Installs[i]
		if rec.State != InstallPending {
			continue
		}
		rec.State = InstallSkipped
		rec.Error = why
		if !slices.Contains(hosts, rec.Host) {
			hosts = append(hosts, rec.Host)
		}
	}
	return hosts
}

// rollback puts back every (host, target) this release installed, and says
// how that went.
func (r *release) rollback(ctx workflow.Context) string {
	type pending struct {
		i int
		f workflow.Future
	}
	var all []pending
	for i := range r.d.Installs {
		rec := &r.d.Installs[i]
		if rec.State != InstallInstalled {
			continue
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              HostQueue(rec.Host),
			ScheduleToStartTimeout: orDefault(r.in.HostTimeout, DefaultHostTimeout),
			StartToCloseTimeout:    orDefault(r.in.InstallTimeout, DefaultInstallTimeout),
			RetryPolicy: &temporal.RetryPolicy{
				MaximumAttempts:        maxAttempts,
				NonRetryableErrorTypes: []string{ErrRollbackUnsupported, ErrReleaseNotFound, ErrUnknownTarget},
			},
		})
		all = append(all, pending{i, workflow.ExecuteActivity(actx, RollbackActivity, RollbackHostInput{
			// The rollback's own id: a retry goes back to the same release.
			Transaction: r.d.Transaction + "-auto-rollback",
			Project:     r.in.Request.Project,
			Env:         r.in.Request.Env,
			Target:      rec.Target,
		})})
	}
	if len(all) == 0 {
		return "no host to roll back"
	}
	var failed []string
	for _, p := range all {
		rec := &r.d.Installs[p.i]
		rb := RollbackRecord{Host: rec.Host, Target: rec.Target}
		err := p.f.Get(ctx, nil)
		rb.Time = workflow.Now(ctx)
		if err == nil {
			rb.OK = true
			rec.RolledBack = true
			r.event(ctx, "", fmt.Sprintf("rolled back %s on %s", rec.Target, rec.Host))
		} else {
			rb.Error = installError(err, rec.Host, orDefault(r.in.HostTimeout, DefaultHostTimeout))
			failed = append(failed, fmt.Sprintf("%s/%s: %s", rec.Host, rec.Target, rb.Error))
			r.event(ctx, "", fmt.Sprintf("rollback of %s on %s failed: %s", rec.Target, rec.Host, rb.Error))
		}
		r.d.Rollbacks = append(r.d.Rollbacks, rb)
	}
	msg := fmt.Sprintf("rolled back %d of %d host install(s)", len(all)-len(failed), len(all))
	if len(failed) > 0 {
		msg += "; rollback failed on " + strings.Join(failed, "; ")
	}
	return msg
}

// notification is the webhook payload of the release as it stands.
func (r *release) notification(ctx workflow.Context) Notification {
	n := Notification{
		Transaction: r.d.Transaction,
		Project:     r.d.Request.Project,
		Env:         r.d.Request.Env,
		Action:      r.d.Request.Action,
		Status:      r.d.Status,
		Reason:      r.d.Reason,
		Requester:   r.d.Request.Requester,
		Commit:      r.d.Commit,
		Time:        workflow.Now(ctx),
	}
	if n.Reason == "" {
		n.Reason = r.d.Waiting
	}
	for _, in := range r.d.Installs {
		n.Hosts.Total++
		switch in.State {
		case InstallInstalled:
			n.Hosts.Installed++
		case InstallFailedS:
			n.Hosts.Failed++
		case InstallSkipped, InstallCancelled:
			n.Hosts.Skipped++
		default:
			n.Hosts.Pending++
		}
		if in.RolledBack {
			n.Hosts.RolledBack++
		}
	}
	return n
}

// startNotify posts the release's state to each webhook through the Notify
// activity, retried with backoff. A webhook that stays down never fails
// the release.
func (r *release) startNotify(ctx workflow.Context) []workflow.Future {
	if len(r.s.webhooks) == 0 {
		return nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    5,
		},
	})
	n := r.notification(ctx)
	var fs []workflow.Future
	for _, u := range r.s.webhooks {
		fs = append(fs, workflow.ExecuteActivity(actx, NotifyActivity, NotifyInput{URL: u, Notification: n}))
	}
	return fs
}

// notifyAsync notifies without waiting: the release goes on waiting for
// its approval meanwhile.
func (r *release) notifyAsync(ctx workflow.Context) { r.startNotify(ctx) }

// notifyFinal notifies a final status and waits, so the workflow does not
// close under its own notifications.
func (r *release) notifyFinal(ctx workflow.Context) {
	for _, f := range r.startNotify(ctx) {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("webhook not notified", "error", err)
		}
	}
}

// closing notifies the final status; end and finish call it once the
// status is final. The locks are given back before the final status is
// set, so a release whose status is final holds none; with webhooks the
// workflow closes once they are notified.
func (r *release) closing(ctx workflow.Context) {
	r.unlock(ctx)
	r.notifyFinal(ctx)
}

func planHosts(p Plan) []string {
	var hosts []string
	for _, t := range sortedKeys(p.Hosts) {
		for _, h := range p.Hosts[t] {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	slices.Sort(hosts)
	return hosts
}

// isUnreachable: the host did not pick up the activity in time.
func isUnreachable(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}
