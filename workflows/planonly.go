package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// PlanOnly answers `relman plan`: it runs the Plan activity on the manager
// for a request, as a release would, and returns the plan with its
// batches, doing nothing else.
func PlanOnly(ctx workflow.Context, in PlanInput) (*PlanOnlyResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{ErrRejected},
		},
	})
	if in.Transaction == "" {
		in.Transaction = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	var plan Plan
	if err := workflow.ExecuteActivity(ctx, PlanActivity, in).Get(ctx, &plan); err != nil {
		return nil, err
	}
	res := &PlanOnlyResult{Request: in.Request, Plan: plan}
	if in.Request.Action != ActionBuild {
		res.Batches = plan.Rollout.Batches(planHosts(plan))
	}
	return res, nil
}
