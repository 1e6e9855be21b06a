package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

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
	assert.Contains(t, errOut, `request id "preempted-1": `+txid+" runs on task queue mallory-queue, not on the manager's queue "+env.ManagerQueue)
	assert.Contains(t, errOut, "not a relman transaction of this manager")
	assert.NotContains(t, out, "INSTALL_COMPLETED")
}
