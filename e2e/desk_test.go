package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/relman/relman/internal/cli"
	"github.com/relman/relman/workflows"
)

// TestPlanAndWhereAskTheDesk: relman plan and relman where are answered by
// the manager's one Desk workflow, as updates: asking starts no workflow
// execution, so the Web UI's list holds transactions, not helpers.
func TestPlanAndWhereAskTheDesk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ask := func() {
		t.Helper()
		out, errOut, code := relman(t, "plan", "shop", "--env", "test", "-o", "json")
		require.Equal(t, cli.ExitOK, code, "%s%s", out, errOut)
		out, errOut, code = relman(t, "where", "shop", "--env", "test", "-o", "json")
		require.Equal(t, cli.ExitOK, code, "%s%s", out, errOut)
	}
	ask()
	desk := workflows.DeskID(workflows.DefaultManagerQueue)
	d, err := env.Client.DescribeWorkflowExecution(ctx, desk, "")
	require.NoError(t, err)
	assert.Equal(t, workflows.DeskWorkflowName, d.GetWorkflowExecutionInfo().GetType().GetName())
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus())

	count := func() int64 {
		t.Helper()
		resp, err := env.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{})
		require.NoError(t, err)
		return resp.GetCount()
	}
	answered := func() int {
		t.Helper()
		n := 0
		it := env.Client.GetWorkflowHistory(ctx, desk, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED {
				n++
			}
		}
		return n
	}
	before, answeredBefore := count(), answered()
	for range 2 {
		ask()
	}
	assert.Equal(t, before, count(), "asking started no workflow execution")
	assert.Equal(t, answeredBefore+4, answered(), "the desk answered each question")

	// A question the manager turns down is an error that says why.
	_, errOut, code := relman(t, "plan", "no-such-project", "--env", "test")
	assert.Equal(t, cli.ExitError, code)
	assert.Contains(t, errOut, `unknown project "no-such-project"`)
}
