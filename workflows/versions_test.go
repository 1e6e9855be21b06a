package workflows_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/relman/relman/workflows"
	"github.com/stretchr/testify/require"
)

// TestReplayCoversEveryVersion: every version a workflow type lists has a
// saved history of that type that took it, so TestReplaySavedHistories
// replays its branch: the version's own marker, or, for a change listed
// before the type's baseline, the baseline's marker.
func TestReplayCoversEveryVersion(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json*"))
	require.NoError(t, err)
	taken := map[string]map[string]bool{} // type -> change id -> marker seen
	for _, f := range files {
		h, err := readHistory(f)
		require.NoError(t, err)
		typ := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		for _, e := range h.GetEvents() {
			m := e.GetMarkerRecordedEventAttributes()
			if m.GetMarkerName() != "Version" {
				continue
			}
			var id string
			var v int
			require.NoError(t, json.Unmarshal(m.GetDetails()["change-id"].GetPayloads()[0].GetData(), &id), f)
			require.NoError(t, json.Unmarshal(m.GetDetails()["version"].GetPayloads()[0].GetData(), &v), f)
			if v < 1 {
				continue
			}
			if taken[typ] == nil {
				taken[typ] = map[string]bool{}
			}
			taken[typ][id] = true
		}
	}
	types := workflows.Versioned()
	require.NotEmpty(t, types)
	for _, typ := range types {
		list := workflows.VersionsOf(typ)
		base := slices.Index(list, "baseline-2026-11")
		for i, id := range list {
			ok := taken[typ][id] || (base >= 0 && i < base && taken[typ][list[base]])
			require.True(t, ok, "no saved history of a %s run that took version %s: record one (see TestReplaySavedHistories) or retire the version", typ, id)
		}
	}
}
