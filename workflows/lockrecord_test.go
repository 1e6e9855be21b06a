package workflows_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relman/relman/workflows"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestRecordLockHistory records lock-supersede-carry.json.gz, a Lock run
// that takes lockSupersedeAsyncVersion (an update that supersedes a
// waiting release) and lockCarryVersion (continuing as new when the
// server suggests it, which a dev server here does after a few events).
// It needs a Temporal CLI: RELMAN_RECORD_LOCK=path/to/temporal.
func TestRecordLockHistory(t *testing.T) {
	cli := os.Getenv("RELMAN_RECORD_LOCK")
	if cli == "" {
		t.Skip("records a history; set RELMAN_RECORD_LOCK to a temporal CLI")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{Identity: "recorder"},
		LogLevel:      "error",
		ExtraArgs: []string{"--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60",
			"--dynamic-config-value", "limit.historyCount.warn=60"},
	})
	require.NoError(t, err)
	defer srv.Stop()
	c := srv.Client()
	queue := workflows.DefaultManagerQueue
	w := worker.New(c, queue, worker.Options{Identity: "recorder"})
	w.RegisterWorkflowWithOptions(workflows.Lock, workflow.RegisterOptions{Name: workflows.LockWorkflowName})
	// A release stands in for the transactions: it only needs to be open
	// to receive the lock's answers.
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		return workflow.Await(ctx, func() bool { return false })
	}, workflow.RegisterOptions{Name: "Holder"})
	require.NoError(t, w.Start())
	defer w.Stop()
	for _, h := range []string{"rec-1", "rec-2", "rec-3"} {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: h, TaskQueue: queue}, "Holder")
		require.NoError(t, err)
	}
	lock := workflows.LockID(queue, "rec", "t")
	acquire := func(tx string, supersede bool) workflows.LockAnswer {
		start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID: lock, TaskQueue: queue, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, workflows.LockWorkflowName, workflows.LockState{Env: "rec", Target: "t", CheckEvery: time.Hour})
		h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions: client.UpdateWorkflowOptions{UpdateName: workflows.LockAcquireUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
				Args: []any{workflows.LockRequest{Lock: lock, Env: "rec", Target: "t", Transaction: tx, Supersede: supersede}}},
		})
		require.NoError(t, err)
		var a workflows.LockAnswer
		require.NoError(t, h.Get(ctx, &a))
		return a
	}
	require.True(t, acquire("rec-1", false).Granted)
	first := c.GetWorkflow(ctx, lock, "").GetRunID()
	require.Equal(t, 1, acquire("rec-2", false).Position)
	require.Equal(t, 1, acquire("rec-3", true).Position, "rec-3 takes rec-2's place")
	for i := 0; ; i++ {
		d, err := c.DescribeWorkflowExecution(ctx, lock, first)
		require.NoError(t, err)
		if d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			break
		}
		require.Less(t, i, 200, "the lock never continued as new")
		// A release from no one it knows: history, and nothing else.
		require.NoError(t, c.SignalWorkflow(ctx, lock, first, workflows.LockReleaseSignal, workflows.LockRelease{Transaction: "rec-none"}))
		time.Sleep(50 * time.Millisecond)
	}
	var st workflows.LockState
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, lock, "", workflows.LockQuery)
		return err == nil && v.Get(&st) == nil
	}, time.Minute, 200*time.Millisecond)
	require.Equal(t, "rec-1", st.Holder, "the holder survives continue-as-new")
	require.Equal(t, []string{"rec-3"}, st.Queue, "the queue survives continue-as-new")

	it := c.GetWorkflowHistory(ctx, lock, first, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(filepath.Join("testdata", "histories", "lock-supersede-carry.json.gz"), gz.Bytes(), 0o644))
}
