package workflows

import (
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// hostCall is one activity on one host's own queue (HostQueue).
type hostCall struct {
	host     string
	activity string
	input    any
}

// fanOut is the one way work goes out to hosts: installs, rollbacks and
// where-queries alike. It schedules one activity per call on the call's
// host queue, in the order given (which is the order of the commands in the
// history, so callers keep it stable), and hands each future to done as it
// completes. It returns when every call has ended. opts are every call's
// activity options; the task queue is set per host.
func fanOut(ctx workflow.Context, opts workflow.ActivityOptions, calls []hostCall, done func(i int, f workflow.Future)) {
	sel := workflow.NewSelector(ctx)
	for i, c := range calls {
		o := opts
		o.TaskQueue = HostQueue(queueScope(ctx), c.host)
		f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), c.activity, c.input)
		sel.AddFuture(f, func(f workflow.Future) { done(i, f) })
	}
	for range calls {
		sel.Select(ctx)
	}
}

// isUnreachable: the host did not pick up the activity in time.
func isUnreachable(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}
