package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
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

// TestRecordDeskContinueAsNew asks the manager's Desk until its run
// continues as new, checks it still answers after, and saves the first
// run's history (the continue-as-new path) under workflows/testdata/histories
// with RELMAN_UPDATE_HISTORIES=1, as desk-continued-as-new.json: gzip it
// there, long histories are kept gzipped. It takes several hundred
// questions, so it only runs when asked.
func TestRecordDeskContinueAsNew(t *testing.T) {
	if os.Getenv("RELMAN_UPDATE_HISTORIES") == "" {
		t.Skip("records histories; set RELMAN_UPDATE_HISTORIES=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := env.Client
	desk := workflows.DeskID(workflows.DefaultManagerQueue)
	req := workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"}
	_, err := transaction.Plan(ctx, c, workflows.DefaultManagerQueue, req, nil)
	require.NoError(t, err)
	first := c.GetWorkflow(ctx, desk, "").GetRunID()
	continued := func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, desk, first)
		require.NoError(t, err)
		return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
	}
	// Eight at a time: within Temporal's ten updates in flight, and the
	// questions past the hand-over are asked again by the client.
	for i := 0; !continued(); i++ {
		require.Less(t, i, 300, "the desk never continued as new")
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := transaction.Plan(ctx, c, workflows.DefaultManagerQueue, req, nil)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
	}
	res, err := transaction.Where(ctx, c, workflows.DefaultManagerQueue, "shop", "test")
	require.NoError(t, err, "the next run answers")
	assert.Contains(t, res.Hosts, "host-a")

	dir := filepath.Join("..", "workflows", "testdata", "histories")
	it := c.GetWorkflowHistory(ctx, desk, first, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "desk-continued-as-new.json"), scrub(t, b), 0o644))
}
