package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

// managerRetry is the retry policy of the manager's short activities: a few
// attempts, none for a rejection.
func managerRetry() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		MaximumAttempts:        config.DefaultManagerActivityAttempts,
		NonRetryableErrorTypes: []string{ErrRejected},
	}
}

// withManagerActivity sets the options of one of the manager's short
// activities (authorize, hosts, an earlier build): config's timeout and
// managerRetry.
func withManagerActivity(ctx workflow.Context) workflow.Context {
	return withShortActivity(ctx, config.DefaultManagerActivityTimeout, config.DefaultManagerActivityAttempts, ErrRejected)
}

// withShortActivity sets the options of a short activity on the manager:
// its timeout, how often it is tried, and the error types no retry fixes.
func withShortActivity(ctx workflow.Context, timeout time.Duration, attempts int32, final ...string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: attempts, NonRetryableErrorTypes: final},
	})
}

// withLocalActivity sets the options of one of the manager's local
// activities: each attempt bounded by config's timeout, and retry's
// attempts all given room. The SDK's ScheduleToClose of a local activity
// defaults to its StartToClose, which would leave an attempt that timed out
// (an update a busy Lock answered late, a registry read) no retry at all.
func withLocalActivity(ctx workflow.Context, retry *temporal.RetryPolicy) workflow.Context {
	attempts := time.Duration(max(retry.MaximumAttempts, 1))
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    config.DefaultManagerActivityTimeout,
		ScheduleToCloseTimeout: attempts * (config.DefaultManagerActivityTimeout + config.DefaultLocalRetryMax),
		RetryPolicy:            retry,
	})
}
