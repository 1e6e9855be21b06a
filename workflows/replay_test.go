package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/workflows"
)

// TestReplaySavedHistories replays histories recorded from real runs (see
// e2e's TestRecordedHistoriesReplay, RELMAN_UPDATE_HISTORIES=1). A workflow
// change that would break transactions already running fails here: guard it
// with workflow.GetVersion instead.
func TestReplaySavedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 7, "saved histories are missing")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: workflows.ReleaseWorkflowName})
			r.RegisterWorkflowWithOptions(workflows.Registry, workflow.RegisterOptions{Name: workflows.RegistryWorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
