package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/rollout"
)

// InstallInput is the install activity's argument.
type InstallInput struct {
	Transaction string      `json:"transaction"`
	Project     string      `json:"project"`
	Env         string      `json:"env"`
	Target      string      `json:"target"`
	Artifact    ArtifactRef `json:"artifact"`
	// Order is the manager's signed order for this install (action
	// install): the installer refuses an install without one it trusts.
	Order *auth.SignedOrder `json:"order,omitempty"`
}

// InstallResult is what one host did for one target.
type InstallResult struct {
	Host     string `json:"host"`
	Path     string `json:"path"`
	Behavior string `json:"behavior"`
	Attempt  int32  `json:"attempt"`
}

// InstallFailure rides as the details of an install error, so the workflow
// learns how many attempts the host made.
type InstallFailure struct {
	Host    string `json:"host"`
	Attempt int32  `json:"attempt"`
}

// install installs on every host registered for each named target in the
// environment (the seed's web-farm rule): all at once, any failure failing
// the release, or as the environment's rollout says.
func (r *release) install(ctx workflow.Context, plan Plan, build BuildResult) error {
	if !plan.Rollout.Legacy() {
		return r.rollout(ctx, plan, build)
	}
	var all []int
	for _, target := range plan.Targets {
		for _, host := range plan.Hosts[target] {
			all = append(all, len(r.d.Installs))
			r.d.Installs = append(r.d.Installs, InstallRecord{Host: host, Target: target, State: InstallPending})
		}
	}
	r.children = viaChildren(ctx, len(all))
	out := r.runInstalls(ctx, "install", all, build, false)
	if out.cancelled || ctx.Err() != nil {
		return temporal.NewCanceledError()
	}
	if len(out.failures) > 0 {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("install failed on %d of %d host installs: %s", len(out.failures), len(all), joinCapped(out.failures, "; ", maxListed)),
			ErrInstallFailed, nil)
	}
	return nil
}

// rollout installs batch by batch: every named target on the hosts of a
// batch in parallel, a pause, the next batch. When more hosts have failed
// than max_failures allows, it stops: later batches stay untouched
// (skipped) and, with auto_rollback, the hosts already done go back.
func (r *release) rollout(ctx workflow.Context, plan Plan, build BuildResult) error {
	ro := plan.Rollout
	hosts := plan.hostList()
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
	r.children = viaChildren(ctx, len(r.d.Installs))
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
			r.event(ctx, "", fmt.Sprintf("batch %d of %d: %s", n, len(batches), joinCapped(b, ", ", maxListed)))
		}
		var idxs []int
		for i := range r.d.Installs {
			if r.d.Installs[i].Batch == n {
				idxs = append(idxs, i)
			}
		}
		out := r.runInstalls(ctx, fmt.Sprintf("install-%d", n), idxs, build, ro.Unreachable == rollout.UnreachableSkip)
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
				n, len(batches), len(failedHosts), joinCapped(failedHosts, ", ", maxListed), maxFail)
			if len(left) > 0 {
				msg += fmt.Sprintf("; %d host(s) left untouched: %s", len(left), joinCapped(left, ", ", maxListed))
			}
			msg += "; " + joinCapped(failures, "; ", maxListed)
			if ro.AutoRollback {
				msg += "; " + r.autoRollback(ctx)
			}
			return temporal.NewNonRetryableApplicationError(msg, ErrInstallFailed, nil)
		}
	}
	done := len(hosts) - len(failedHosts)
	r.completed = fmt.Sprintf("installed on %d host(s) in %d batch(es)", done, len(batches))
	if len(failedHosts) > 0 {
		r.completed += fmt.Sprintf("; %d host(s) failed within max_failures %d: %s", len(failedHosts), maxFail, joinCapped(failures, "; ", maxListed))
	}
	if len(unreachable) > 0 {
		r.completed += fmt.Sprintf("; skipped unreachable: %s", joinCapped(unreachable, ", ", maxListed))
	}
	return nil
}

// installOptions are the options of every host's install.
func (r *release) installOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		ScheduleToStartTimeout: orDefault(r.in.HostTimeout, config.DefaultHostTimeout),
		StartToCloseTimeout:    orDefault(r.in.InstallTimeout, config.DefaultInstallTimeout),
		HeartbeatTimeout:       r.heartbeat,
		WaitForCancellation:    true,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: []string{ErrChecksum, ErrUnknownTarget, ErrBadArtifact},
		},
	}
}

type batchOutcome struct {
	failures    []string // "host/target: error", sorted
	failedHosts []string // sorted
	unreachable []string // host/target skipped as unreachable
	cancelled   bool
}

// runInstalls runs the installs of r.d.Installs[idxs] in parallel and waits
// for all of them; name names their fan-out's children.
func (r *release) runInstalls(ctx workflow.Context, name string, idxs []int, build BuildResult, skipUnreachable bool) batchOutcome {
	var out batchOutcome
	hostTimeout := orDefault(r.in.HostTimeout, config.DefaultHostTimeout)
	opts := r.installOptions()
	calls := make([]hostCall, len(idxs))
	for n, i := range idxs {
		rec := &r.d.Installs[i]
		rec.State = InstallInstalling
		rec.Started = workflow.Now(ctx)
		in := InstallInput{
			Transaction: r.d.Transaction,
			Project:     r.in.Request.Project,
			Env:         r.in.Request.Env,
			Target:      rec.Target,
			Artifact:    build.Artifacts[rec.Target],
		}
		in.Order = signOrder(ctx, auth.Order{
			Transaction: in.Transaction, Host: rec.Host, Env: in.Env, Target: in.Target,
			Action: OrderInstall, SHA256: in.Artifact.SHA256,
		}, orderValid(opts))
		calls[n] = hostCall{host: rec.Host, activity: InstallActivity, input: in}
	}
	fanOutVia(ctx, name, opts, calls, r.children, func(n int, f hostResult) {
		rec := &r.d.Installs[idxs[n]]
		rec.Ended = workflow.Now(ctx)
		var res InstallResult
		err := f.Get(ctx, &res)
		switch {
		case err == nil:
			rec.State = InstallInstalled
			rec.Path = res.Path
			rec.Attempts = res.Attempt
			r.hostEvent(ctx, fmt.Sprintf("installed %s on %s at %s", rec.Target, rec.Host, res.Path))
		case temporal.IsCanceledError(err):
			out.cancelled = true
			rec.State = InstallCancelled
			rec.Error = "cancelled"
		case skipUnreachable && isUnreachable(err):
			rec.State = InstallSkipped
			rec.Error = installError(err, rec.Host, hostTimeout) + "; skipped (unreachable: skip)"
			out.unreachable = append(out.unreachable, rec.Host+"/"+rec.Target)
			r.hostEvent(ctx, fmt.Sprintf("skipped %s on unreachable %s", rec.Target, rec.Host))
		default:
			rec.State = InstallFailedS
			rec.Error = installError(err, rec.Host, hostTimeout)
			rec.Attempts = attemptsOf(err)
			out.failures = append(out.failures, fmt.Sprintf("%s/%s: %s", rec.Host, rec.Target, rec.Error))
			if !slices.Contains(out.failedHosts, rec.Host) {
				out.failedHosts = append(out.failedHosts, rec.Host)
			}
			r.hostEvent(ctx, fmt.Sprintf("install of %s on %s failed: %s", rec.Target, rec.Host, rec.Error))
		}
	})
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

// autoRollback puts back every (host, target) this release installed, and
// says how that went.
func (r *release) autoRollback(ctx workflow.Context) string {
	hostTimeout := orDefault(r.in.HostTimeout, config.DefaultHostTimeout)
	opts := workflow.ActivityOptions{
		ScheduleToStartTimeout: hostTimeout,
		StartToCloseTimeout:    orDefault(r.in.InstallTimeout, config.DefaultInstallTimeout),
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: []string{ErrRollbackUnsupported, ErrReleaseNotFound, ErrUnknownTarget},
		},
	}
	var idxs []int
	var calls []hostCall
	for i := range r.d.Installs {
		rec := &r.d.Installs[i]
		if rec.State != InstallInstalled {
			continue
		}
		idxs = append(idxs, i)
		in := RollbackHostInput{
			// The rollback's own id: a retry goes back to the same release.
			Transaction: r.d.Transaction + "-auto-rollback",
			Project:     r.in.Request.Project,
			Env:         r.in.Request.Env,
			Target:      rec.Target,
		}
		in.Order = signOrder(ctx, in.order(rec.Host), orderValid(opts))
		calls = append(calls, hostCall{host: rec.Host, activity: RollbackActivity, input: in})
	}
	if len(calls) == 0 {
		return "no host to roll back"
	}
	var failed []string
	// Records in the order of the hosts, whatever order they answer in.
	records := make([]RollbackRecord, len(calls))
	fanOut(ctx, "rollback", opts, calls, func(n int, f hostResult) {
		rec := &r.d.Installs[idxs[n]]
		rb := &records[n]
		*rb = RollbackRecord{Host: rec.Host, Target: rec.Target}
		err := f.Get(ctx, nil)
		rb.Time = workflow.Now(ctx)
		if err == nil {
			rb.OK = true
			rec.RolledBack = true
			r.hostEvent(ctx, fmt.Sprintf("rolled back %s on %s", rec.Target, rec.Host))
		} else {
			rb.Error = installError(err, rec.Host, hostTimeout)
			failed = append(failed, fmt.Sprintf("%s/%s: %s", rec.Host, rec.Target, rb.Error))
			r.hostEvent(ctx, fmt.Sprintf("rollback of %s on %s failed: %s", rec.Target, rec.Host, rb.Error))
		}
	})
	r.d.Rollbacks = append(r.d.Rollbacks, records...)
	slices.Sort(failed)
	msg := fmt.Sprintf("rolled back %d of %d host install(s)", len(calls)-len(failed), len(calls))
	if len(failed) > 0 {
		msg += "; rollback failed on " + joinCapped(failed, "; ", maxListed)
	}
	return msg
}

// maxListed is how many hosts or failures a reason or an event names; it
// counts the rest, so a message about a thousand hosts stays readable and
// small (the per-host detail has them all).
const maxListed = 20

// hostEvent logs one host's step in the detail's events, unless the release
// has more installs than one detail answer carries: its installs, read a
// page at a time, say the same, and a thousand such events would not fit.
func (r *release) hostEvent(ctx workflow.Context, detail string) {
	if len(r.d.Installs) <= MaxDetailInstalls {
		r.event(ctx, "", detail)
	}
}

// installError says in one sentence why a host's install (or rollback)
// failed.
func installError(err error, host string, hostTimeout time.Duration) string {
	if isUnreachable(err) {
		return fmt.Sprintf("host %s unreachable: it did not pick up the install within %s", host, hostTimeout)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Sprintf("install timed out (%s)", te.TimeoutType())
	}
	return err.Error()
}

func attemptsOf(err error) int32 {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		// As JSON: an error that came back through a HostFanOut child
		// holds its details that way, and a typed read of it would panic.
		var raw json.RawMessage
		var f InstallFailure
		if app.Details(&raw) == nil && decodeJSON(raw, &f) == nil && f.Attempt > 0 {
			return f.Attempt
		}
	}
	return 0
}
