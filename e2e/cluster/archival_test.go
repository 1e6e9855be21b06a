//go:build cluster

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/relman/relman/harness/testcluster"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// TestArchivedTransactionAnswers is the archival half of the Guarantees row
// "a transaction older than the namespace retention", on a server that
// archives (the test cluster: history and visibility on the filestore): a
// release is archived when it closes; once Temporal has deleted its
// execution, as retention does, `relman status` and `relman history` answer
// from the archive with what they answered before. The cluster's manager
// keeps no closed-transaction records, so the archive is the only source.
func TestArchivedTransactionAnswers(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 3*time.Minute)
	txid, err := env.Release(ctx, "", install("app", "cluster-archival"))
	require.NoError(t, err)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	desc, err := env.Client.DescribeWorkflowExecution(ctx, txid, "")
	require.NoError(t, err)
	run := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()

	statusBefore, errOut, code := env.CLI(ctx, "status", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	historyBefore, errOut, code := env.CLI(ctx, "history", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)

	// Archived at its close: its visibility record is listed and its
	// history file is whole. Deleting before both are written would drop
	// the archive (a deletion never archives).
	var listErr error
	require.Eventually(t, func() bool {
		resp, err := env.Client.ListArchivedWorkflow(ctx, &workflowservice.ListArchivedWorkflowExecutionsRequest{
			PageSize: 10, Query: "WorkflowId = '" + txid + "'",
		})
		if listErr = err; err != nil || len(resp.GetExecutions()) == 0 {
			return false
		}
		ok, err := archivedHistory(run)
		if err != nil {
			listErr = err
			return false
		}
		return ok && transaction.ArchivedRun(ctx, env.Client, txid) == run
	}, time.Minute, 200*time.Millisecond, "%s was not archived within a minute (last error: %v)", txid, listErr)

	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, env.Forget(fctx, txid, run))

	fromArchive, err := transaction.FromHistory(ctx, env.Client, txid, run)
	require.NoError(t, err, "the detail from the archived history")
	assert.Equal(t, *d, *fromArchive)

	statusAfter, errOut, code := env.CLI(ctx, "status", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, errOut, "this is its archived history", "the CLI says where the answer came from")
	assert.JSONEq(t, statusBefore, statusAfter, "the same status, requester, commit, artifacts and hosts")
	historyAfter, errOut, code := env.CLI(ctx, "history", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.JSONEq(t, historyBefore, historyAfter, "the same timeline, to its close")
	t.Logf("%s (run %s) deleted from Temporal; status and history read from the archive in %s", txid, run, testcluster.Namespace)
}

// archivedHistory reports whether the filestore holds a whole history file
// of run (its name is a hash; its content names the run).
func archivedHistory(run string) (bool, error) {
	found := false
	err := filepath.WalkDir(filepath.Join(temp.ArchiveDir(), "history"), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if e.IsDir() || found {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // being written
		}
		if strings.Contains(string(b), run) && json.Valid(b) {
			found = true
		}
		return nil
	})
	return found, err
}
