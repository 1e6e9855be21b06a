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
