package workflows

import "go.temporal.io/sdk/workflow"

// The long-lived workflows (Lock, RegistryShard, Desk) are entities, each
// shaped alike: a struct holding its state, one method per signal, update
// (with its validator) and query, a main loop (run) that waits on
// conditions, and this one way to hand over to the next run.

// historyFull reports whether a run should continue as new: the server
// suggests it, or its history is past maxHistory events.
func historyFull(ctx workflow.Context, maxHistory int) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > maxHistory
}

// continueAsNew ends a run of the entity workflow name: it waits until
// every signal and update handler has finished and settled (nil: nothing
// more) holds, then asks carry for the next run's input and returns the
// continue-as-new error carrying it. A carry that answers false keeps the
// run going (nil error): it had more to do first.
func continueAsNew(ctx workflow.Context, name string, settled func() bool, carry func() (any, bool)) error {
	if err := workflow.Await(ctx, func() bool {
		return workflow.AllHandlersFinished(ctx) && (settled == nil || settled())
	}); err != nil {
		return err
	}
	next, ok := carry()
	if !ok {
		return nil
	}
	return workflow.NewContinueAsNewError(ctx, name, next)
}
