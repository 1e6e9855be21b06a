package workers

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/workflows"
)

// RegisterCoordinator registers the safe-rollout workflows (Lock, PlanOnly)
// and the manager's activities for locks and webhooks on w.
func RegisterCoordinator(w worker.Registry, c *activities.Coordinator) {
	w.RegisterWorkflowWithOptions(workflows.Lock, workflow.RegisterOptions{Name: workflows.LockWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.PlanOnly, workflow.RegisterOptions{Name: workflows.PlanOnlyWorkflowName})
	w.RegisterActivityWithOptions(c.RequestLock, activity.RegisterOptions{Name: workflows.RequestLockActivity})
	w.RegisterActivityWithOptions(c.LockHolderOpen, activity.RegisterOptions{Name: workflows.LockHolderOpenActivity})
	w.RegisterActivityWithOptions(c.Notify, activity.RegisterOptions{Name: workflows.NotifyActivity})
}
