package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

// TestLocalActivityAttemptsAllHaveRoom: every attempt the retry policy of a
// manager's local activity allows fits in its ScheduleToClose. Left unset,
// the SDK makes it the StartToClose, and a first attempt that timed out
// (a busy Lock answering its update late: three releases of 200 on the
// PostgreSQL cluster ended REJECTED so) was never tried again.
func TestLocalActivityAttemptsAllHaveRoom(t *testing.T) {
	for _, retry := range []*temporal.RetryPolicy{lockLocalRetry(), managerRetry(),
		{MaximumAttempts: config.DefaultManagerActivityAttempts}} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.ExecuteWorkflow(func(ctx workflow.Context) (workflow.LocalActivityOptions, error) {
			return workflow.GetLocalActivityOptions(withLocalActivity(ctx, retry)), nil
		})
		require.NoError(t, env.GetWorkflowError())
		var o workflow.LocalActivityOptions
		require.NoError(t, env.GetWorkflowResult(&o))
		require.Equal(t, config.DefaultManagerActivityTimeout, o.StartToCloseTimeout)
		require.GreaterOrEqual(t, o.ScheduleToCloseTimeout, time.Duration(retry.MaximumAttempts)*o.StartToCloseTimeout,
			"%d attempts of %s each", retry.MaximumAttempts, o.StartToCloseTimeout)
	}
}
