package workflows_test

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relman/relman/workers"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplaySavedHistoriesCoverEveryWorkflow: each registered workflow has
// at least one saved history.
func TestReplaySavedHistoriesCoverEveryWorkflow(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json*"))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range files {
		h, err := readHistory(f)
		require.NoError(t, err)
		seen[h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()] = true
	}
	for _, w := range workers.Workflows {
		require.True(t, seen[w.Name], "no saved history of workflow %s in testdata/histories", w.Name)
	}
}

// TestReplaySavedHistories replays histories recorded from real runs (see
// e2e's TestRecordedHistoriesReplay, RELMAN_UPDATE_HISTORIES=1, and
// RELMAN_SAVE_ALL_HISTORIES=dir to pick more). A workflow change that would
// break transactions already running fails here: guard it with
// workflow.GetVersion instead. Long histories are kept gzipped.
func TestReplaySavedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json*"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 37, "saved histories are missing")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// Registered from the managers' own list, so a workflow a
			// manager runs can never be missing here.
			r := worker.NewWorkflowReplayer()
			workers.RegisterWorkflows(r)
			h, err := readHistory(f)
			require.NoError(t, err)
			// Under its own workflow id: a transaction names the children
			// of its fan-out after it (fanout.go).
			id := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowId()
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: id},
			}))
		})
	}
}

func readHistory(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rd io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		rd = gz
	}
	return client.HistoryFromJSON(rd, client.HistoryJSONOptions{})
}
