package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
)

// The release's timeouts when the input leaves them zero are config's
// (config.DefaultBuildTimeout and the rest): one home for every default.
const (
	// maxAttempts bounds retries of builds and installs
	// (config.DefaultWorkAttempts).
	maxAttempts = config.DefaultWorkAttempts
)

var (
	saProject   = temporal.NewSearchAttributeKeyKeyword(SAProject)
	saEnv       = temporal.NewSearchAttributeKeyKeyword(SAEnv)
	saStatus    = temporal.NewSearchAttributeKeyKeyword(SAStatus)
	saRequester = temporal.NewSearchAttributeKeyKeyword(SARequester)
)

// ReleaseInput is the Release workflow's one argument.
type ReleaseInput struct {
	Request Request `json:"request"`
	// Signature proves who asked (a token's signature, or the gateway's);
	// the manager checks it and records the principal as the requester.
	Signature *auth.Signature `json:"signature,omitempty"`
	// Timeouts; zero means the default.
	BuildTimeout   time.Duration `json:"build_timeout,omitempty"`
	InstallTimeout time.Duration `json:"install_timeout,omitempty"`
	// HostTimeout bounds how long an install waits for its host to pick it up.
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
}

// Release is one transaction: plan, build, then install on every host
// registered for the environment and each named target. Its workflow id is
// the transaction id; its event history is the transaction log.
//
// A release that does not succeed fails the workflow with an application
// error whose type is the final status word, so the Web UI shows it as
// failed and callers branch on the type.
func Release(ctx workflow.Context, in ReleaseInput) (*Detail, error) {
	ctx = withBaseline(ctx)
	r := &release{in: in}
	r.gate.d = &r.d
	r.onAwait = r.notifyAsync
	r.d.Transaction = workflow.GetInfo(ctx).WorkflowExecution.ID
	r.d.Request = in.Request
	r.d.Started = workflow.Now(ctx)
	run, err := setTransactionHandlers(ctx, &r.d, &r.gate)
	if err != nil {
		return nil, err
	}
	return r.run(run)
}

// setTransactionHandlers registers what a transaction (a Release or a
// Rollback) answers: the status and detail queries, its gate's approval
// handlers and the cancel update. It returns the context the work runs
// under, its own so that an authorized cancel update stops it as a cancel
// from Temporal does.
func setTransactionHandlers(ctx workflow.Context, d *Detail, g *gate) (workflow.Context, error) {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) { return d.Status, nil }); err != nil {
		return nil, err
	}
	if err := setDetailQueries(ctx, d); err != nil {
		return nil, err
	}
	if err := g.setApprovalHandlers(ctx); err != nil {
		return nil, err
	}
	run, cancel := workflow.WithCancel(ctx)
	if err := setCancelHandler(ctx, d, cancel); err != nil {
		return nil, err
	}
	return run, nil
}

// release is the Release workflow's state; its detail d is what the
// queries answer.
type release struct {
	in        ReleaseInput
	d         Detail
	heartbeat time.Duration
	// gate: approval and locks, reporting into d.
	gate

	// hooks are notified of final statuses and of waits for approval;
	// webhooks are the URLs of releases planned before hooks.
	hooks    []WebhookRef
	webhooks []string
	// completed overrides the INSTALL_COMPLETED detail of a rollout.
	completed string
	// children: installs go out through HostFanOut children (fanout.go).
	children bool
}

// startedAfterPlanVersion marks releases that record STARTED once the
// plan has authenticated who asked, so the STARTED event, the timeline and
// the requester search attribute name the principal, never the name the
// client claimed.
const startedAfterPlanVersion = "started-after-plan"

func (r *release) run(ctx workflow.Context) (*Detail, error) {
	req := r.in.Request
	v := changeVersion(ctx, startedAfterPlanVersion)
	if v == workflow.DefaultVersion {
		r.setStatus(ctx, StatusStarted, fmt.Sprintf("%s of %s from %s requested by %s", req.Action, req.Project, req.Source, orAnonymous(req.Requester)))
	} else {
		// Queries answer STARTED meanwhile; the event waits for the plan.
		r.d.Status = StatusStarted
	}

	plan, err := r.plan(ctx)
	if err != nil {
		rej := r.noteRejection(err)
		if v != workflow.DefaultVersion {
			r.d.Request.Requester = rej.Requester
			r.d.Signer = rej.Signer
		}
		return r.end(ctx, err, StatusRejected)
	}
	r.hooks, r.webhooks = plan.Hooks, plan.Webhooks
	r.approval = plan.Approval
	r.d.Signer = plan.Signer
	// With authentication on, the manager names a principal; approval
	// decisions are then authenticated too.
	r.authOn = plan.Principal != ""
	if v == workflow.DefaultVersion {
		if plan.Principal != "" && plan.Principal != r.d.Request.Requester {
			// The requester is who the manager authenticated, not who the
			// client claimed to be.
			r.d.Request.Requester = plan.Principal
			if err := workflow.UpsertTypedSearchAttributes(ctx, saRequester.ValueSet(plan.Principal)); err != nil {
				workflow.GetLogger(ctx).Warn("search attributes not updated", "error", err)
			}
		}
	} else {
		if plan.Principal != "" {
			r.d.Request.Requester = plan.Principal
		}
		r.setStatus(ctx, StatusStarted, fmt.Sprintf("%s of %s from %s requested by %s", req.Action, req.Project, req.Source, orAnonymous(r.d.Request.Requester)))
	}
	if len(plan.Unanswered) > 0 {
		r.event(ctx, "", unansweredEvent(plan.Unanswered))
	}
	r.in.BuildTimeout = orDefault(r.in.BuildTimeout, plan.BuildTimeout)
	r.in.InstallTimeout = orDefault(r.in.InstallTimeout, plan.InstallTimeout)
	r.in.HostTimeout = orDefault(r.in.HostTimeout, plan.HostTimeout)
	r.heartbeat = orDefault(plan.HeartbeatTimeout, config.DefaultHeartbeatTimeout)
	var build BuildResult
	if req.From != "" {
		build, err = r.earlierBuild(ctx, plan)
		if err != nil {
			return r.end(ctx, err, StatusRejected)
		}
	} else {
		build, err = r.build(ctx, plan)
		if err != nil {
			return r.end(ctx, err, StatusBuildFailed)
		}
	}
	r.d.Builder = build.Builder
	r.d.Commit = build.Commit
	r.d.Artifacts = build.Artifacts
	r.d.Steps = build.Steps
	if req.From != "" {
		r.setStatus(ctx, StatusBuildCompleted, fmt.Sprintf("using the build of %s at %s from transaction %s", req.Project, shortCommit(build.Commit), req.From))
	} else {
		r.setStatus(ctx, StatusBuildCompleted, fmt.Sprintf("built %s at %s on %s", req.Project, shortCommit(build.Commit), build.Builder))
	}
	if req.Action == ActionBuild {
		return r.finish(ctx), nil
	}
	if err := r.hold(ctx, plan); err != nil {
		if isType(err, ErrSuperseded) {
			return r.end(ctx, err, StatusSuperseded)
		}
		return r.end(ctx, err, StatusRejected)
	}
	if err := r.install(ctx, plan, build); err != nil {
		return r.end(ctx, err, StatusInstallFailed)
	}
	r.unlock(ctx)
	if r.completed != "" {
		r.setStatus(ctx, StatusInstallCompleted, r.completed)
	} else {
		r.setStatus(ctx, StatusInstallCompleted, fmt.Sprintf("installed on %d host(s)", len(plan.hostList())))
	}
	return r.finish(ctx), nil
}

// planLocalVersion marks releases whose plan runs as a local activity.
const planLocalVersion = "plan-local-activity"

// plan runs on the manager worker that runs the workflow, as a local
// activity: it only reads the manager's config and the registry, so it
// needs no task queue round trip (two dispatches fewer per release; see
// BENCHMARKS.md). Releases started before keep the queued activity.
func (r *release) plan(ctx workflow.Context) (Plan, error) {
	retry := managerRetry()
	info := workflow.GetInfo(ctx)
	in := PlanInput{Request: r.in.Request, Transaction: r.d.Transaction, Signature: r.in.Signature,
		Workflow: ReleaseWorkflowName, BuildTimeout: r.in.BuildTimeout, InstallTimeout: r.in.InstallTimeout, HostTimeout: r.in.HostTimeout,
		RunID: info.WorkflowExecution.RunID, RunStarted: info.WorkflowStartTime}
	var plan Plan
	if changeVersion(ctx, planLocalVersion) == 1 {
		lctx := withLocalActivity(ctx, retry)
		err := workflow.ExecuteLocalActivity(lctx, PlanActivity, in).Get(lctx, &plan)
		return plan, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: config.DefaultManagerActivityTimeout, RetryPolicy: retry})
	err := workflow.ExecuteActivity(ctx, PlanActivity, in).Get(ctx, &plan)
	return plan, err
}

// noteRejection keeps the webhooks a Rejected plan carries, so the
// rejection is notified too, and returns what the plan found of who asked.
func (r *release) noteRejection(err error) PlanRejection {
	var app *temporal.ApplicationError
	var rej PlanRejection
	if errors.As(err, &app) && app.HasDetails() {
		if app.Details(&rej) == nil {
			r.hooks, r.webhooks = rej.Hooks, rej.Webhooks
		}
	}
	return rej
}

func (r *release) build(ctx workflow.Context, plan Plan) (BuildResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              BuildQueue(queueScope(ctx), r.in.Request.Project),
		ScheduleToStartTimeout: orDefault(r.in.HostTimeout, config.DefaultHostTimeout),
		StartToCloseTimeout:    orDefault(r.in.BuildTimeout, config.DefaultBuildTimeout),
		HeartbeatTimeout:       r.heartbeat,
		WaitForCancellation:    true,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: []string{ErrBuildFailed, ErrSourceFailed, ErrUnknownProject, ErrInvalidRequest},
		},
	})
	var res BuildResult
	err := workflow.ExecuteActivity(ctx, BuildActivity, BuildInput{
		Transaction: r.d.Transaction,
		Project:     r.in.Request.Project,
		Source:      r.in.Request.Source,
		Targets:     plan.Targets,
		Rebuild:     r.in.Request.Rebuild,
	}).Get(ctx, &res)
	if err != nil {
		return res, err
	}
	for _, t := range plan.Targets {
		if _, ok := res.Artifacts[t]; !ok {
			return res, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("builder %s produced no artifact for named target %q", res.Builder, t), ErrBuildFailed, nil)
		}
	}
	return res, nil
}

// earlierBuild takes the artifacts of an earlier transaction's build, so an
// install does not rebuild what was already built and tested.
func (r *release) earlierBuild(ctx workflow.Context, plan Plan) (BuildResult, error) {
	ctx = withManagerActivity(ctx)
	var res BuildResult
	if err := workflow.ExecuteActivity(ctx, EarlierBuildActivity, r.in.Request).Get(ctx, &res); err != nil {
		return res, err
	}
	for _, t := range plan.Targets {
		if _, ok := res.Artifacts[t]; !ok {
			return res, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("transaction %s has no artifact for named target %q", r.in.Request.From, t), ErrRejected, nil)
		}
	}
	return res, nil
}

// hold holds an install back until it may go: approved when the
// environment needs approval, then holding the lock of every named target.
func (r *release) hold(ctx workflow.Context, plan Plan) error {
	if plan.Approval.Required {
		if err := r.awaitApproval(ctx); err != nil {
			return err
		}
	}
	return r.acquireLocks(ctx, plan.Lock, r.in.Request.Env, plan.Targets, plan.LockTimeout)
}

// end records a failure and fails the workflow with the status as its type.
// A cancellation ends CANCELLED whatever step it interrupted.
func (r *release) end(ctx workflow.Context, err error, status Status) (*Detail, error) {
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		r.d.Reason = cancelledReason(&r.d)
		r.unlock(dctx)
		r.setStatus(dctx, StatusCancelled, r.d.Reason)
		r.closing(dctx)
		r.d.Ended = workflow.Now(dctx)
		return r.d.answer(), temporal.NewCanceledError(r.d.Reason)
	}
	r.d.Reason = reason(err, r.in, status)
	r.unlock(ctx)
	r.setStatus(ctx, status, r.d.Reason)
	r.closing(ctx)
	r.d.Ended = workflow.Now(ctx)
	return r.d.answer(), temporal.NewNonRetryableApplicationError(r.d.Reason, string(status), nil, r.d.answer())
}

func (r *release) finish(ctx workflow.Context) *Detail {
	r.closing(ctx)
	r.d.Ended = workflow.Now(ctx)
	return r.d.answer()
}

// closing notifies the final status; end and finish call it once the
// status is final. The locks are given back before the final status is
// set, so a release whose status is final holds none; with webhooks the
// workflow closes once they are notified.
func (r *release) closing(ctx workflow.Context) {
	r.unlock(ctx)
	r.notifyFinal(ctx)
}

func (r *release) setStatus(ctx workflow.Context, s Status, detail string) {
	recordStatus(ctx, &r.d, s, detail)
}

func (r *release) event(ctx workflow.Context, s Status, detail string) {
	appendEvent(ctx, &r.d, s, detail)
}

// recordStatus sets a transaction's status word, logs it in the detail and
// upserts the search attributes that the Web UI and relman list filter on;
// the first status recorded (STARTED, or REJECTED when the plan refused
// the request) also sets project, environment and requester: the
// requester d names, which is the authenticated principal where there is
// one, and none for a request that did not authenticate.
func recordStatus(ctx workflow.Context, d *Detail, s Status, detail string) {
	first := len(d.Events) == 0
	if s.Final(d.Request.Action) {
		recordClosed(ctx, d.Transaction) // record.go
	}
	d.Status = s
	appendEvent(ctx, d, s, detail)
	updates := []temporal.SearchAttributeUpdate{saStatus.ValueSet(string(s))}
	if s == StatusStarted || first {
		req := d.Request
		updates = append(updates, saProject.ValueSet(req.Project))
		if s == StatusStarted || req.Requester != "" {
			updates = append(updates, saRequester.ValueSet(orAnonymous(req.Requester)))
		}
		if req.Env != "" {
			updates = append(updates, saEnv.ValueSet(req.Env))
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not updated", "error", err)
	}
}

func appendEvent(ctx workflow.Context, d *Detail, s Status, detail string) {
	d.Events = append(d.Events, Event{Time: workflow.Now(ctx), Status: s, Detail: detail})
}

// reason turns an activity error into one sentence for the detail and the
// XML-RPC client: the application error's own message where there is one.
func reason(err error, in ReleaseInput, status Status) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		if status == StatusBuildFailed && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
			return fmt.Sprintf("no builder for %s picked up the build within %s; check that a builder advertising it is running",
				in.Request.Project, orDefault(in.HostTimeout, config.DefaultHostTimeout))
		}
		return fmt.Sprintf("%s timed out (%s)", strings.ToLower(strings.TrimSuffix(string(status), "_FAILED")), te.TimeoutType())
	}
	return err.Error()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func orAnonymous(s string) string {
	if s == "" {
		return "anonymous"
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// isType reports whether err is an application error of type t.
func isType(err error, t string) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == t
}
