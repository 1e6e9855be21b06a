package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// TestLoad200Releases: 200 concurrent releases over 4 projects and 3 hosts
// all end INSTALL_COMPLETED; none is lost or duplicated.
func TestLoad200Releases(t *testing.T) {
	env.DumpOnFailure(t)
	const n = 200
	ctx := timeout(t, 4*time.Minute)
	requester := fmt.Sprintf("chaos-load-%d", time.Now().UnixNano())
	start := time.Now()

	reqs := make([]workflows.Request, n)
	for i := range reqs {
		reqs[i] = install(fmt.Sprintf("load%d", i%len(loadTargets)+1))
		reqs[i].Requester = requester
	}
	ids, errs := env.ReleaseAll(ctx, reqs)
	for i, err := range errs {
		require.NoError(t, err, "start %d", i)
	}
	started := time.Since(start)

	statuses, reasons := env.FinalAll(ctx, ids)
	wall := time.Since(start)

	byStatus := map[workflows.Status]int{}
	for i, s := range statuses {
		byStatus[s]++
		assert.Equal(t, workflows.StatusInstallCompleted, s, "%s: %s", ids[i], reasons[i])
	}
	t.Logf("%d releases: started in %s, all final in %s (%.1f/s): %v", n, started.Round(time.Millisecond), wall.Round(time.Millisecond), float64(n)/wall.Seconds(), byStatus)

	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	assert.Len(t, distinct, n, "transaction ids are distinct")

	// Visibility is eventually consistent: poll until every one is listed.
	var rows []transaction.Listed
	require.Eventually(t, func() bool {
		var err error
		rows, err = transaction.List(ctx, env.Client, transaction.Filter{Requester: requester, Limit: 1000})
		return err == nil && len(rows) >= n
	}, time.Minute, 500*time.Millisecond, "listing by requester")
	listed := map[string]int{}
	for _, r := range rows {
		listed[r.Transaction]++
	}
	assert.Len(t, rows, n, "none listed twice, none extra")
	for _, id := range ids {
		assert.Equal(t, 1, listed[id], "transaction %s listed %d times", id, listed[id])
	}
	require.Eventually(t, func() bool {
		rows, _ = transaction.List(ctx, env.Client, transaction.Filter{Requester: requester, Status: string(workflows.StatusInstallCompleted), Limit: 1000})
		return len(rows) == n
	}, time.Minute, 500*time.Millisecond, "listing INSTALL_COMPLETED by requester")
}

// TestRequestIDIdempotent: `relman release --request-id X` twice while the
// release runs and once after it ended prints the same transaction id, and
// exactly one workflow with that id exists.
func TestRequestIDIdempotent(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 2*time.Minute)
	id := fmt.Sprintf("chaos-idem-%d", time.Now().UnixNano())
	_ = freshInstall(t, "shop") // a new trunk commit: the build really runs
	releaseCLI := func() string {
		t.Helper()
		out, errOut, code := env.CLI(ctx, "release", "shop", "--env", "test", "--request-id", id)
		require.Equal(t, cli.ExitOK, code, "stdout %q stderr %q", out, errOut)
		return strings.TrimSpace(out)
	}
	first := releaseCLI()
	assert.True(t, strings.HasPrefix(first, workflows.RequestIDPrefix), "the transaction id is derived from the request id: %s", first)
	assert.NotEqual(t, id, first, "a request id never becomes the workflow id as it is")
	second := releaseCLI()
	assert.Equal(t, first, second, "same id while running")
	d, err := transaction.Get(ctx, env.Client, first)
	if err == nil {
		assert.False(t, d.Status.Final(workflows.ActionInstall), "the second request came while the release ran (status %s)", d.Status)
	}

	d, err = env.Final(ctx, first)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)

	third := releaseCLI()
	assert.Equal(t, first, third, "same id after it completed")
	out, _, code := env.CLI(ctx, "status", third)
	require.Equal(t, cli.ExitOK, code)
	assert.Equal(t, "INSTALL_COMPLETED\n", out, "the completed transaction was not started again")

	var count int
	require.Eventually(t, func() bool {
		count, err = env.ListByID(ctx, first)
		return err == nil && count >= 1
	}, 30*time.Second, 300*time.Millisecond)
	// Give a duplicate run time to show up in visibility, then count again.
	time.Sleep(time.Second)
	count, err = env.ListByID(context.WithoutCancel(ctx), first)
	require.NoError(t, err)
	assert.Equal(t, 1, count, "executions with workflow id %s", id)
	assert.Len(t, whoLines(t, env.Path("who-shop.log"), first), 1, "the build ran once")
}
