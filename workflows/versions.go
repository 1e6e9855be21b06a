package workflows

import "go.temporal.io/sdk/workflow"

// baselineVersion marks transactions started once every change listed in
// baselined was in place. Such a transaction records this one version
// marker at its start and takes each listed change without a marker of its
// own: in the Go SDK every version marker also upserts the
// TemporalChangeVersion search attribute, so a release recorded seven
// markers and seven upserts (visibility writes) for changes that every new
// transaction takes anyway. Transactions from before carry no baseline
// marker and read each change's own marker, as before.
//
// A later change gets its own version as usual; once many have piled up,
// a new baseline can take them in the same way.
const baselineVersion = "baseline-2026-11"

// baselined are the changes a transaction on the baseline takes.
var baselined = map[string]bool{
	startedAfterPlanVersion: true,
	planLocalVersion:        true,
	scopedQueuesVersion:     true,
	fanOutChildrenVersion:   true,
	lockVersion:             true,
	lockTimeoutVersion:      true,
	lockUpdateVersion:       true,
	recordVersion:           true,
	recordStartVersion:      true,
	rollbackPolicyVersion:   true,
}

type baselineKey struct{}

// withBaseline records (or, replaying, reads) whether the transaction is on
// the baseline. Call it first thing in the workflow, before any other
// version check.
func withBaseline(ctx workflow.Context) workflow.Context {
	if workflow.GetVersion(ctx, baselineVersion, workflow.DefaultVersion, 1) == 1 {
		return workflow.WithValue(ctx, baselineKey{}, true)
	}
	return ctx
}

// changeVersion is workflow.GetVersion(ctx, changeID, DefaultVersion, 1),
// answered 1 without a marker for a baselined change of a transaction on
// the baseline.
func changeVersion(ctx workflow.Context, changeID string) workflow.Version {
	if baselined[changeID] {
		if on, _ := ctx.Value(baselineKey{}).(bool); on {
			return 1
		}
	}
	return workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, 1)
}
