package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/workflows"
)

// TestPreemptedRequestIDIsNotReported: someone with namespace access
// starts a workflow under the transaction id a user's request id will
// name (it is predictable), typed Release but on a task queue of their
// own, where their worker could answer its queries with any status. The
// user's `relman release --request-id ... --wait` refuses it as not a
// transaction of this manager, instead of reporting it.
func TestPreemptedRequestIDIsNotReported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Setenv("RELMAN_REQUESTER", "victim")
	txid := workflows.RequestTransactionID(env.ManagerQueue, workflows.ClaimedSigner("victim"), "preempted-1")
	run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: txid, TaskQueue: "mallory-queue"},
		workflows.ReleaseWorkflowName, workflows.ReleaseInput{Request: workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test", Requester: "victim"}})
	require.NoError(t, err)
	defer func() { _ = env.Client.TerminateWorkflow(context.Background(), txid, run.GetRunID(), "test over") }()

	out, errOut, code := env.CLI(ctx, "release", "shop", "--env", "test", "--request-id", "preempted-1", "--wait")
	assert.NotEqual(t, 0, code, out)
	assert.Contains(t, errOut, `request id "preempted-1": `+txid+" runs on task queue mallory-queue, not on the manager's queue "+env.ManagerQueue+": another manager's")
	assert.Contains(t, errOut, "not a relman transaction of this manager")
	assert.NotContains(t, out, "INSTALL_COMPLETED")
}

// TestStrangersTransactionIsNotRead: a workflow typed Release on a queue of
// someone with namespace access, whose own worker answers relman's detail
// query with a completed build of artifacts of their choosing, is neither
// reported by `relman status` nor installed from by `relman install --from`.
func TestStrangersTransactionIsNotRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const queue = "mallory-answers"
	w := worker.New(env.Client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.ReleaseInput) error {
		d := workflows.Detail{Transaction: workflow.GetInfo(ctx).WorkflowExecution.ID, Request: in.Request,
			Status: workflows.StatusBuildCompleted, Commit: "0123456789abcdef0123456789abcdef01234567",
			Artifacts: map[string]workflows.ArtifactRef{"web": {Key: "sha256/" + strings.Repeat("ab", 32), SHA256: strings.Repeat("ab", 32), Size: 1, Format: "file", Name: "evil"}}}
		if err := workflow.SetQueryHandler(ctx, workflows.DetailQuery, func() (workflows.Detail, error) { return d, nil }); err != nil {
			return err
		}
		return workflow.Await(ctx, func() bool { return false })
	}, workflow.RegisterOptions{Name: workflows.ReleaseWorkflowName})
	require.NoError(t, w.Start())
	defer w.Stop()
	run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue},
		workflows.ReleaseWorkflowName, workflows.ReleaseInput{Request: workflows.Request{Project: "shop", Action: workflows.ActionBuild}})
	require.NoError(t, err)
	fake := run.GetID()
	defer func() { _ = env.Client.TerminateWorkflow(context.Background(), fake, "", "test over") }()

	out, errOut, code := env.CLI(ctx, "status", fake)
	assert.NotEqual(t, 0, code, out)
	assert.Contains(t, errOut, "runs on task queue "+queue+", not on the manager's queue")
	assert.NotContains(t, out, "BUILD_COMPLETED")

	// The CLI refuses it before starting anything; a release started
	// with it all the same is rejected by the manager, nothing installed.
	out, errOut, code = env.CLI(ctx, "install", "--from", fake, "--env", "test", "--wait")
	assert.NotEqual(t, 0, code, out)
	assert.Contains(t, errOut, fake+" runs on task queue "+queue)
	txid := start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test", From: fake})
	d, err := final(t, txid)
	require.Error(t, err)
	assert.Equal(t, workflows.StatusRejected, d.Status)
	assert.Contains(t, d.Reason, "cannot install from "+fake+" runs on task queue "+queue)
	assert.Empty(t, d.Installs)
}
