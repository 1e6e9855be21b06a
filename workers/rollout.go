package workers

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/workflows"
)

// registerRollout registers the manager's rollout workflows (Where,
// Rollback) and the Hosts activity they plan with.
func registerRollout(w worker.Registry, a *activities.Manager) {
	w.RegisterWorkflowWithOptions(workflows.Where, workflow.RegisterOptions{Name: workflows.WhereWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.Rollback, workflow.RegisterOptions{Name: workflows.RollbackWorkflowName})
	w.RegisterActivityWithOptions(a.Hosts, activity.RegisterOptions{Name: workflows.HostsActivity})
}

// registerRolloutInstaller registers an installer host's Where and
// Rollback activities on its host queue.
func registerRolloutInstaller(w worker.Registry, a *activities.Installer) {
	w.RegisterActivityWithOptions(a.Where, activity.RegisterOptions{Name: workflows.WhereActivity})
	w.RegisterActivityWithOptions(a.Rollback, activity.RegisterOptions{Name: workflows.RollbackActivity})
}
