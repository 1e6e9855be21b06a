package workflows

import (
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
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: config.DefaultManagerActivityTimeout,
		RetryPolicy:         managerRetry(),
	})
}
