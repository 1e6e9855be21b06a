package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/workflows"
)

func rolloutHosts() workflows.HostsResult {
	return workflows.HostsResult{
		Targets: []string{"app"},
		Hosts:   map[string][]string{"app": {"host-a", "host-b"}},
	}
}

func rolloutEnv(t *testing.T, rollback func(context.Context, workflows.RollbackHostInput) (workflows.RollbackHostResult, error)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: workflows.DefaultManagerQueue})
	env.RegisterWorkflowWithOptions(workflows.Rollback, workflow.RegisterOptions{Name: workflows.RollbackWorkflowName})
	env.RegisterWorkflowWithOptions(workflows.Where, workflow.RegisterOptions{Name: workflows.WhereWorkflowName})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.HostsInput) (workflows.HostsResult, error) {
		if in.Project != "site" {
			return workflows.HostsResult{}, temporal.NewNonRetryableApplicationError(`unknown project "`+in.Project+`"`, workflows.ErrRejected, nil)
		}
		return rolloutHosts(), nil
	}, activity.RegisterOptions{Name: workflows.HostsActivity})
	env.RegisterActivityWithOptions(rollback, activity.RegisterOptions{Name: workflows.RollbackActivity})
	env.RegisterWorkflowWithOptions(workflows.RecordTransaction, workflow.RegisterOptions{Name: workflows.RecordTransactionWorkflowName})
	env.RegisterActivityWithOptions(recordNothing, activity.RegisterOptions{Name: workflows.RecordActivity})
	env.RegisterActivityWithOptions(startNoRecorder, activity.RegisterOptions{Name: workflows.StartRecorderActivity})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.AuthorizeInput) (string, error) {
		if in.Claimed == "mallory" {
			return "", temporal.NewNonRetryableApplicationError("user mallory may not install project \"site\"", workflows.ErrRejected, nil)
		}
		if in.Action != "install" || in.Project != "site" {
			return "", fmt.Errorf("unexpected authorize input %+v", in)
		}
		return in.Claimed, nil
	}, activity.RegisterOptions{Name: workflows.AuthorizeActivity})
	env.RegisterActivityWithOptions(func(ctx context.Context, in workflows.WhereHostInput) (map[string]workflows.LiveInstall, error) {
		host := activity.GetInfo(ctx).TaskQueue
		if host == workflows.HostQueue(workflows.DefaultManagerQueue, "host-b") {
			return nil, temporal.NewNonRetryableApplicationError("host host-b: disk on fire", "Boom", nil)
		}
		return map[string]workflows.LiveInstall{"app": {Target: "app", Transaction: "tx-3"}}, nil
	}, activity.RegisterOptions{Name: workflows.WhereActivity})
	return env
}

func rollbackInput() workflows.RollbackInput {
	return workflows.RollbackInput{Request: workflows.Request{Project: "site", Env: "test", Requester: "alice"}}
}

func TestRollbackCompletes(t *testing.T) {
	var hosts []string
	env := rolloutEnv(t, func(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		hosts = append(hosts, activity.GetInfo(ctx).TaskQueue)
		return workflows.RollbackHostResult{From: "tx-3", To: "tx-2", Path: "/srv/app/releases/tx-2", Attempt: 1}, nil
	})
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, rollbackInput())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	assert.Equal(t, workflows.StatusRollbackCompleted, d.Status)
	assert.Equal(t, workflows.ActionRollback, d.Request.Action)
	assert.True(t, d.Status.Final(d.Request.Action))
	assert.True(t, d.Status.Succeeded(d.Request.Action))
	assert.ElementsMatch(t, []string{workflows.HostQueue(workflows.DefaultManagerQueue, "host-a"), workflows.HostQueue(workflows.DefaultManagerQueue, "host-b")}, hosts)
	require.Len(t, d.Installs, 2)
	for _, in := range d.Installs {
		assert.Equal(t, workflows.InstallInstalled, in.State)
		assert.Equal(t, "/srv/app/releases/tx-2", in.Path)
	}
	v, err := env.QueryWorkflow(workflows.StatusQuery)
	require.NoError(t, err)
	var s workflows.Status
	require.NoError(t, v.Get(&s))
	assert.Equal(t, workflows.StatusRollbackCompleted, s)
}

func TestRollbackFailsOnOneHost(t *testing.T) {
	env := rolloutEnv(t, func(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		if activity.GetInfo(ctx).TaskQueue == workflows.HostQueue(workflows.DefaultManagerQueue, "host-b") {
			return workflows.RollbackHostResult{}, temporal.NewNonRetryableApplicationError(
				"host host-b installs app with the unarchive behavior; rollback needs the release behavior", workflows.ErrRollbackUnsupported, nil)
		}
		return workflows.RollbackHostResult{From: "tx-3", To: "tx-2"}, nil
	})
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, rollbackInput())
	err := env.GetWorkflowError()
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "%v", err)
	assert.Equal(t, string(workflows.StatusRollbackFailed), app.Type())
	var d workflows.Detail
	require.NoError(t, app.Details(&d))
	assert.Equal(t, workflows.StatusRollbackFailed, d.Status)
	assert.Contains(t, d.Reason, "host-b/app")
	assert.Contains(t, d.Reason, "rollback needs the release behavior")
	assert.True(t, d.Status.Final(workflows.ActionRollback))
	assert.False(t, d.Status.Succeeded(workflows.ActionRollback))
}

func TestRollbackRejected(t *testing.T) {
	env := rolloutEnv(t, func(context.Context, workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		t.Fatal("no host may be asked")
		return workflows.RollbackHostResult{}, nil
	})
	in := rollbackInput()
	in.Request.Project = "nosuch"
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, in)
	var app *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &app))
	assert.Equal(t, string(workflows.StatusRejected), app.Type())
}

func TestWhereReportsHostsAndErrors(t *testing.T) {
	env := rolloutEnv(t, func(context.Context, workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		return workflows.RollbackHostResult{}, nil
	})
	env.ExecuteWorkflow(workflows.WhereWorkflowName, workflows.WhereInput{Project: "site", Env: "test"})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.WhereResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, "tx-3", res.Hosts["host-a"]["app"].Transaction)
	assert.NotContains(t, res.Hosts, "host-b")
	assert.Contains(t, res.Errors["host-b"], "disk on fire")
}

// A rollback the manager does not authorize ends REJECTED before any host
// is touched.
func TestRollbackNotAuthorized(t *testing.T) {
	called := false
	env := rolloutEnv(t, func(context.Context, workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		called = true
		return workflows.RollbackHostResult{}, nil
	})
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, workflows.RollbackInput{
		Request: workflows.Request{Project: "site", Env: "test", Requester: "mallory"},
	})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	v, err := env.QueryWorkflow(workflows.DetailQuery)
	require.NoError(t, err)
	var d workflows.Detail
	require.NoError(t, v.Get(&d))
	assert.Equal(t, workflows.StatusRejected, d.Status)
	assert.Contains(t, d.Reason, "mallory may not install")
	assert.False(t, called, "no host was asked to roll back")
}
