//go:build cluster

package testcluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/harness/testcluster"
)

const queue = "testcluster-bare"

// bare is the floor workflow of the benchmarks: one activity, then it
// waits for a signal when asked to (so a service can be killed while it is
// open), then one more activity.
func bare(ctx workflow.Context, waitForSignal bool) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond},
	})
	var a, b string
	if err := workflow.ExecuteActivity(ctx, "noop", "before").Get(ctx, &a); err != nil {
		return "", err
	}
	if waitForSignal {
		workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	}
	if err := workflow.ExecuteActivity(ctx, "noop", "after").Get(ctx, &b); err != nil {
		return "", err
	}
	return a + "," + b, nil
}

func noop(_ context.Context, s string) (string, error) { return s, nil }

func dumpLogs(t *testing.T, logs func() []string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, f := range logs() {
			b, _ := os.ReadFile(f)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("==== %s (tail)\n%s", f, b)
		}
	})
}

// TestCluster starts one cluster and, on it, runs a workflow, then kills
// each service in turn while a workflow is open and starts it again: the
// open workflow and a new one both complete.
func TestCluster(t *testing.T) {
	tools := testcluster.FindTools("")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	start := time.Now()
	c, err := testcluster.Start(ctx, tools, t.TempDir())
	if c != nil {
		dumpLogs(t, c.Logs)
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	t.Logf("cluster up in %s: frontend %s, ports %v, postgres %s", time.Since(start).Round(time.Millisecond), c.Address(), c.Ports(), c.Postgres.Address())
	for _, p := range c.Ports() {
		require.Less(t, p, 32768, "Temporal's rpc_port column is a SMALLINT")
	}
	pids := map[int]string{}
	for _, svc := range testcluster.Services {
		pid := c.Pid(svc)
		require.NotZero(t, pid, svc)
		pids[pid] = svc
	}
	require.Len(t, pids, len(testcluster.Services), "one process per service: %v", pids)

	cl, err := c.Dial()
	require.NoError(t, err)
	defer cl.Close()
	w := worker.New(cl, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(bare, workflow.RegisterOptions{Name: "bare"})
	w.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: "noop"})
	require.NoError(t, w.Start())
	defer w.Stop()

	t.Run("search attributes", func(t *testing.T) {
		resp, err := cl.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: testcluster.Namespace})
		require.NoError(t, err)
		require.NotEmpty(t, testcluster.SearchAttributes)
		for _, sa := range testcluster.SearchAttributes {
			require.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, resp.GetCustomAttributes()[sa], sa)
		}
	})

	t.Run("workflow", func(t *testing.T) {
		run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "bare", false)
		require.NoError(t, err)
		var got string
		require.NoError(t, run.Get(ctx, &got))
		require.Equal(t, "before,after", got)
	})

	for _, svc := range []string{testcluster.History, testcluster.Matching, testcluster.Frontend, testcluster.Worker} {
		t.Run("kill "+svc, func(t *testing.T) {
			id := "open-across-" + svc
			_, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "bare", true)
			require.NoError(t, err)
			require.NoError(t, waitFor(ctx, func() error {
				// The first activity done: the workflow is parked on its signal.
				d, err := cl.DescribeWorkflowExecution(ctx, id, "")
				if err != nil {
					return err
				}
				if d.GetWorkflowExecutionInfo().GetHistoryLength() < 8 {
					return errors.New("first activity not done yet")
				}
				return nil
			}))

			before := c.Pid(svc)
			require.NoError(t, c.Kill(svc))
			require.False(t, c.Running(svc))
			for _, other := range testcluster.Services {
				if other != svc {
					require.True(t, c.Running(other), "%s still runs while %s is down", other, svc)
				}
			}
			killed := time.Now()
			require.NoError(t, c.StartService(ctx, svc))
			serving := time.Now()
			require.NotEqual(t, before, c.Pid(svc), "a new %s process", svc)

			require.NoError(t, waitFor(ctx, func() error {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				return cl.SignalWorkflow(sctx, id, "", "go", nil)
			}))
			got, err := result(ctx, cl, id)
			require.NoError(t, err)
			require.Equal(t, "before,after", got)
			done := time.Now()

			run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "bare", false)
			require.NoError(t, err)
			got, err = result(ctx, cl, run.GetID())
			require.NoError(t, err)
			require.Equal(t, "before,after", got)
			// Facts for the operator docs, not assertions.
			t.Logf("%s: serving again %s after the kill; the open workflow completed %s after that; a new one took %s",
				svc, serving.Sub(killed).Round(time.Millisecond), done.Sub(serving).Round(time.Millisecond), time.Since(done).Round(time.Millisecond))
		})
	}
}

// waitFor calls f until it succeeds or ctx ends.
func waitFor(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// result waits for the workflow's result, riding out a frontend that is
// away for a moment.
func result(ctx context.Context, cl client.Client, id string) (string, error) {
	for {
		var s string
		err := cl.GetWorkflow(ctx, id, "").Get(ctx, &s)
		var wee *temporal.WorkflowExecutionError
		if err == nil || errors.As(err, &wee) || ctx.Err() != nil {
			return s, err
		}
		select {
		case <-ctx.Done():
			return s, err
		case <-time.After(300 * time.Millisecond):
		}
	}
}
