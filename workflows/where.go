package workflows

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// whereHostTimeout bounds how long a where waits for a host: a person is
// waiting for the answer, and a silent host is itself the answer.
const whereHostTimeout = 30 * time.Second

// Where answers which transaction is live for each named target of a
// project on every host registered for the environment. It is short-lived
// (workflow id "where-..."): the CLI starts it and waits for its result. A
// host that does not answer is reported in Errors, not as a failure.
func Where(ctx workflow.Context, in WhereInput) (WhereResult, error) {
	res := WhereResult{Project: in.Project, Env: in.Env, Hosts: map[string]map[string]LiveInstall{}}
	hosts, err := rolloutHosts(ctx, in.Project, in.Env)
	if err != nil {
		return res, err
	}
	byHost := hosts.ByHost()
	futures := map[string]workflow.Future{}
	names := sortedKeys(byHost)
	for _, h := range names {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              HostQueue(h),
			ScheduleToStartTimeout: whereHostTimeout,
			StartToCloseTimeout:    whereHostTimeout,
			RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
		})
		futures[h] = workflow.ExecuteActivity(actx, WhereActivity, WhereHostInput{Project: in.Project, Env: in.Env, Targets: byHost[h]})
	}
	for _, h := range names {
		var live map[string]LiveInstall
		if err := futures[h].Get(ctx, &live); err != nil {
			if res.Errors == nil {
				res.Errors = map[string]string{}
			}
			res.Errors[h] = hostError(err, h)
			continue
		}
		res.Hosts[h] = live
	}
	return res, nil
}

// rolloutHosts runs the manager's Hosts activity.
func rolloutHosts(ctx workflow.Context, project, env string) (HostsResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{ErrRejected},
		},
	})
	var res HostsResult
	err := workflow.ExecuteActivity(ctx, HostsActivity, HostsInput{Project: project, Env: env}).Get(ctx, &res)
	return res, err
}

// hostError says in one sentence why a host's activity failed.
func hostError(err error, host string) string {
	var te *temporal.TimeoutError
	if errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
		return "host " + host + " unreachable: it did not pick up the request in time"
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	if errors.As(err, &te) {
		return "host " + host + " timed out (" + te.TimeoutType().String() + ")"
	}
	return err.Error()
}
