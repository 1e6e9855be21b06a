package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"
)

// Versions, per workflow type, in the order they came. Every version check
// goes through changeVersion, and answers as workflow.GetVersion(ctx, id,
// DefaultVersion, 1) did for the same change ids, so recorded histories
// replay unchanged.
//
// A type's list ends with its baseline where it has one: a run started on
// the baseline records that one marker (in the Go SDK every version marker
// also upserts the TemporalChangeVersion search attribute, a visibility
// write) and takes every change before it in the list without a marker of
// its own. Runs from before carry no baseline marker and read each change's
// own marker, as before. Changes after the baseline get their own markers
// until the next baseline takes them in. A version goes from its list,
// with the branch it guards, once no open run can need it: README.md,
// "Retiring a version", and TestReplayCoversEveryVersion, which wants a
// saved history for every version listed.
// A slice, not a map: workflow code never ranges over a map.
var versions = []typeVersions{
	{ReleaseWorkflowName, []string{
		lockVersion,
		planLocalVersion,
		scopedQueuesVersion,
		recordVersion,
		fanOutChildrenVersion,
		lockTimeoutVersion,
		startedAfterPlanVersion,
		lockUpdateVersion,
		recordStartVersion,
		baselineVersion,
	}},
	{RollbackWorkflowName, []string{
		lockVersion,
		scopedQueuesVersion,
		recordVersion,
		fanOutChildrenVersion,
		lockTimeoutVersion,
		rollbackPolicyVersion,
		lockUpdateVersion,
		recordStartVersion,
		baselineVersion,
	}},
	{LockWorkflowName, []string{
		lockCarryVersion,
		lockSupersedeAsyncVersion,
	}},
}

// typeVersions are the versions of one workflow type, oldest first.
type typeVersions struct {
	typ     string
	changes []string
}

// versionList is the list of typ; false when typ has none.
func versionList(typ string) ([]string, bool) {
	for _, v := range versions {
		if v.typ == typ {
			return v.changes, true
		}
	}
	return nil, false
}

// baselineVersion is the baseline of the Release and Rollback lists.
const baselineVersion = "baseline-2026-11"

// onBaseline reports whether the change is one a run of typ on its
// baseline takes without a marker: listed before the baseline in typ's
// list or, for a change typ does not list, in any list (as the single
// list of baselined changes before the lists were per type).
func onBaseline(typ, changeID string) bool {
	before := func(list []string) bool {
		b, i := slices.Index(list, baselineVersion), slices.Index(list, changeID)
		return b >= 0 && i >= 0 && i < b
	}
	if list, ok := versionList(typ); ok && slices.Contains(list, changeID) {
		return before(list)
	}
	for _, v := range versions {
		if before(v.changes) {
			return true
		}
	}
	return false
}

type baselineKey struct{}

// withBaseline records (or, replaying, reads) whether the run is on its
// type's baseline. Call it first thing in the workflow, before any other
// version check.
func withBaseline(ctx workflow.Context) workflow.Context {
	if changeVersion(ctx, baselineVersion) == 1 {
		return workflow.WithValue(ctx, baselineKey{}, true)
	}
	return ctx
}

// changeVersion is the one version check of the workflows:
// workflow.GetVersion(ctx, changeID, DefaultVersion, 1), answered 1
// without a marker for a change a run on its baseline takes. A change not
// in the list of a type that has one is a mistake (the list keeps the
// order and the retirement honest), and so is a check by a type without a
// list: both are reported to unlisted and checked all the same. Only
// Release, Rollback and Lock check versions.
func changeVersion(ctx workflow.Context, changeID string) workflow.Version {
	typ := workflow.GetInfo(ctx).WorkflowType.Name
	if list, _ := versionList(typ); !slices.Contains(list, changeID) && unlisted != nil {
		unlisted(typ, changeID)
	}
	if changeID != baselineVersion && onBaseline(typ, changeID) {
		if on, _ := ctx.Value(baselineKey{}).(bool); on {
			return 1
		}
	}
	return workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, 1)
}

// unlisted is told of a change checked by a type that does not list it;
// tests make it fail.
var unlisted func(typ, changeID string)

// versionsOf is the ordered version list of a workflow type, for tests.
func versionsOf(typ string) []string {
	list, _ := versionList(typ)
	return slices.Clone(list)
}
