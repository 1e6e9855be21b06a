package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// The legacy Registry workflow, one workflow of every lease, replaced by
// its RegistryShards (registryshard.go). No current code starts one: the
// registry client and the roles talk to the shards only. It stays
// registered on the managers' workers because a Registry run open from
// before the shards continues as new into itself, so it keeps needing a
// worker for as long as it runs. It goes (with RegistryWorkflowName and its
// entry in workers.Workflows) once no open run of it is left: see
// README.md, "Retiring a version", for the check; terminating such a run
// by hand is harmless, as the shards hold every live registration.

// maxRegistryHistory continues the registry as new before its history grows
// past what replays quickly, even when the server does not suggest it.
const maxRegistryHistory = 10000

// RegistryState is the Registry workflow's argument, carried across
// continue-as-new.
type RegistryState struct {
	Leases map[string]Lease `json:"leases"`
}

// Registry holds the registrations of builders and installer hosts as leases.
// Workers register and renew through the register update (started with
// update-with-start, so no bootstrap step exists), a lease that is not
// renewed in time expires, and the state survives by continue-as-new.
//
// Renewals only push an expiry later, so they never wake the main loop; only
// the earliest expiry's timer does, which keeps the history to a few events
// per renewal.
func Registry(ctx workflow.Context, state RegistryState) error {
	leases := state.Leases
	if leases == nil {
		leases = map[string]Lease{}
	}
	logger := workflow.GetLogger(ctx)
	// earlier is set when a registration expires before the pending timer.
	earlier := false
	var deadline time.Time

	err := workflow.SetQueryHandler(ctx, RegistrationsQuery, func() ([]Lease, error) {
		return sortedLeases(leases), nil
	})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, RegisterUpdate,
		func(ctx workflow.Context, r Registration) (Lease, error) {
			l := putLease(leases, r, workflow.Now(ctx), logger)
			if deadline.IsZero() || l.Expires.Before(deadline) {
				earlier = true
			}
			return l, nil
		},
		workflow.UpdateHandlerOptions{Validator: validateRegistration},
	)
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandler(ctx, DeregisterUpdate,
		func(ctx workflow.Context, d DeregisterRequest) error {
			delete(leases, string(d.Role)+"/"+d.ID)
			logger.Info("deregistered", "role", d.Role, "id", d.ID)
			return nil
		})
	if err != nil {
		return err
	}

	for {
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > maxRegistryHistory {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			return workflow.NewContinueAsNewError(ctx, RegistryWorkflowName, RegistryState{Leases: leases})
		}
		earlier = false
		deadline = earliestExpiry(leases)
		wake := func() bool {
			i := workflow.GetInfo(ctx)
			return earlier || i.GetContinueAsNewSuggested() || i.GetCurrentHistoryLength() > maxRegistryHistory
		}
		if deadline.IsZero() {
			if err := workflow.Await(ctx, wake); err != nil {
				return err
			}
			continue
		}
		wait := deadline.Sub(workflow.Now(ctx))
		if wait > 0 {
			if _, err := workflow.AwaitWithTimeout(ctx, wait, wake); err != nil {
				return err
			}
		}
		now := workflow.Now(ctx)
		for _, k := range sortedKeys(leases) {
			if l := leases[k]; !l.Expires.After(now) {
				delete(leases, k)
				logger.Warn("lease expired", "role", l.Role, "id", l.ID, "renewed", l.Renewed)
			}
		}
	}
}
