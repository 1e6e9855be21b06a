package workers

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/workflows"
)

// This file is the one list of what each role registers, under the names
// stored histories know (workflows/names.go); nothing is registered
// anywhere else.

// Workflows are every workflow relman runs, all on the manager's queue.
var Workflows = []struct {
	Name string
	Func any
}{
	{workflows.ReleaseWorkflowName, workflows.Release},
	{workflows.RollbackWorkflowName, workflows.Rollback},
	{workflows.RegistryWorkflowName, workflows.Registry},
	{workflows.RegistryShardWorkflowName, workflows.RegistryShard},
	{workflows.HostFanOutWorkflowName, workflows.HostFanOut},
	{workflows.LockWorkflowName, workflows.Lock},
	{workflows.PlanOnlyWorkflowName, workflows.PlanOnly},
	{workflows.WhereWorkflowName, workflows.Where},
	{workflows.DeskWorkflowName, workflows.Desk},
	{workflows.RecordTransactionWorkflowName, workflows.RecordTransaction},
	{workflows.RecordsWorkflowName, workflows.Records},
}

// WorkflowRegistry is what workflows are registered on: a worker, or a
// replayer in the replay tests.
type WorkflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// RegisterWorkflows registers every workflow of Workflows on r.
func RegisterWorkflows(r WorkflowRegistry) {
	for _, w := range Workflows {
		r.RegisterWorkflowWithOptions(w.Func, workflow.RegisterOptions{Name: w.Name})
	}
}

type namedActivity struct {
	name string
	fn   any
}

// managerActivities run on the manager's queue (Plan also as a local
// activity of the Release workflow).
func managerActivities(m *activities.Manager, c *activities.Coordinator, rec *activities.Records) []namedActivity {
	return []namedActivity{
		{workflows.RecordActivity, rec.Record},
		{workflows.StartRecorderActivity, rec.StartRecorder},
		{workflows.ReadRecordsActivity, rec.ReadRecords},
		{workflows.PlanActivity, m.Plan},
		{workflows.EarlierBuildActivity, m.EarlierBuild},
		{workflows.AuthorizeActivity, m.Authorize},
		{workflows.HostsActivity, m.Hosts},
		{workflows.RequestLockActivity, c.RequestLock},
		{workflows.LockHolderOpenActivity, c.LockHolderOpen},
		{workflows.AcquireLockActivity, c.AcquireLock},
		{workflows.ReleaseLockActivity, c.ReleaseLock},
		{workflows.NotifyActivity, c.Notify},
	}
}

// builderActivities run on a manager's build queue of a project
// (workflows.BuildQueue: relman-build-<project> for the default manager).
func builderActivities(b *activities.Builder) []namedActivity {
	return []namedActivity{{workflows.BuildActivity, b.Build}}
}

// installerActivities run on the host's own queue of a manager
// (workflows.HostQueue: relman-host-<host> for the default manager).
func installerActivities(i *activities.Installer) []namedActivity {
	return []namedActivity{
		{workflows.InstallActivity, i.Install},
		{workflows.WhereActivity, i.Where},
		{workflows.RollbackActivity, i.Rollback},
	}
}

func registerActivities(w worker.Registry, as []namedActivity) {
	for _, a := range as {
		w.RegisterActivityWithOptions(a.fn, activity.RegisterOptions{Name: a.name})
	}
}
