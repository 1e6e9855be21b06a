package workflows

import (
	"fmt"
	"hash/fnv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// RegistryShards is how many RegistryShard workflows hold one manager's
// registrations. Every role and every manager must agree on it (a host
// registers with the shard its id hashes to, a manager reads them all), so
// it is part of the protocol: never change it.
const RegistryShards = 16

// Capacity of one shard. Its leases ride in its continue-as-new input and
// in its query answer (about 250 bytes each), so past maxShardLeases a
// registration is refused with a message rather than growing a payload
// towards Temporal's 2 MB limit; defaultShardHistory bounds its history
// (and the replay after a manager restart) well under the 10,240 events at
// which Temporal warns and the 10,000 signals one run may receive.
const (
	maxShardLeases      = 2000
	defaultShardHistory = 5000
)

// RegistryShardID is the workflow id of shard k of the registry registryID.
func RegistryShardID(registryID string, k int) string {
	return fmt.Sprintf("%s-shard-%02d", registryID, k)
}

// RegistryShardOf is the shard that holds the registrations of id, whatever
// their role: an id claimed by a builder and an installer meets in one
// shard, which refuses the second.
func RegistryShardOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % RegistryShards)
}

// RegistryShardState is a RegistryShard's argument, carried across
// continue-as-new.
type RegistryShardState struct {
	Leases map[string]Lease `json:"leases"`
	// Carried are the signals delivered to the run before that it had not
	// applied yet; the next run applies them first.
	Carried []RegistrySignal `json:"carried,omitempty"`
	// MaxHistory continues the shard as new past this many events; zero
	// means defaultShardHistory (tests set it low).
	MaxHistory int `json:"max_history,omitempty"`
}

// RegistrySignal is one renewal or deregistration, sent as the one signal
// RegistrySignalName so that a host's renewal and its deregistration are
// applied in the order they were sent.
type RegistrySignal struct {
	// Renew carries the whole registration, so a renewal that finds no
	// lease (it expired while the manager was away) registers again.
	Renew      *Registration      `json:"renew,omitempty"`
	Deregister *DeregisterRequest `json:"deregister,omitempty"`
}

// RegistryShard holds the leases of the builders and installer hosts whose
// ids hash to it (RegistryShardOf). It replaces the single Registry, whose
// every renewal was an Update: Temporal allows 10 Updates in flight and
// 2,000 per run, which 1,000 hosts renewing every 20 s run into.
//
// A registration is the register Update (started with update-with-start):
// it is answered, refused when its id is another role's, and visible once
// it returns. A renewal is a signal (signal-with-start) carrying the whole
// registration: no in-flight limit, no round trip to a manager (the server
// answers once it has stored it, so renewals go on while no manager runs),
// and a lease lost meanwhile comes back with the next renewal. A
// deregistration is a signal too. Only the earliest expiry's timer wakes the
// shard besides its signals, and it continues as new with its leases and
// the signals delivered but not yet applied, so none is lost.
func RegistryShard(ctx workflow.Context, st RegistryShardState) error {
	leases := st.Leases
	if leases == nil {
		leases = map[string]Lease{}
	}
	maxHistory := st.MaxHistory
	if maxHistory <= 0 {
		maxHistory = defaultShardHistory
	}
	logger := workflow.GetLogger(ctx)
	signals := workflow.GetSignalChannel(ctx, RegistrySignalName)
	// wake tells the main loop that a registration expires before its
	// timer, so the timer must be set again.
	wake := workflow.NewBufferedChannel(ctx, 1)
	var timerAt time.Time

	put := func(r Registration, now time.Time) Lease {
		l := putLease(leases, r, now, logger)
		if timerAt.IsZero() || l.Expires.Before(timerAt) {
			wake.SendAsync(true)
		}
		return l
	}
	apply := func(s RegistrySignal) {
		now := workflow.Now(ctx)
		switch {
		case s.Renew != nil:
			if err := validateRegistration(ctx, *s.Renew); err != nil {
				logger.Warn("renewal ignored", "error", err)
				return
			}
			if err := clash(leases, *s.Renew, now); err != nil {
				logger.Warn("renewal ignored", "error", err)
				return
			}
			put(*s.Renew, now)
		case s.Deregister != nil:
			d := s.Deregister
			key := string(d.Role) + "/" + d.ID
			// An update can overtake a signal sent before it (update
			// handlers run first in a workflow task), so the goodbye of a
			// process that has since started again can arrive after its
			// new registration: it names its own run, and leaves the new
			// one alone.
			if l, ok := leases[key]; ok && d.Instance != "" && l.Instance != "" && l.Instance != d.Instance {
				logger.Info("deregistration of an earlier run ignored", "role", d.Role, "id", d.ID)
				return
			}
			delete(leases, key)
			logger.Info("deregistered", "role", d.Role, "id", d.ID)
		}
	}

	err := workflow.SetQueryHandler(ctx, RegistrationsQuery, func() ([]Lease, error) {
		return sortedLeases(leases), nil
	})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, RegisterUpdate,
		func(ctx workflow.Context, r Registration) (Lease, error) {
			return put(r, workflow.Now(ctx)), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, r Registration) error {
			if err := validateRegistration(ctx, r); err != nil {
				return err
			}
			now := workflow.Now(ctx)
			if err := clash(leases, r, now); err != nil {
				return err
			}
			if _, ok := leases[r.Key()]; !ok && len(leases) >= maxShardLeases {
				return fmt.Errorf("registry shard %s holds %d registrations, its limit; relman is sized for %d per shard (%d shards), so ids are unevenly spread or the fleet is past what one registry holds",
					workflow.GetInfo(ctx).WorkflowExecution.ID, len(leases), maxShardLeases, RegistryShards)
			}
			return nil
		}},
	)
	if err != nil {
		return err
	}

	for _, s := range st.Carried {
		apply(s)
	}
	var timer workflow.Future
	cancelTimer := func() {}
	for {
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > maxHistory {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			return workflow.NewContinueAsNewError(ctx, RegistryShardWorkflowName, RegistryShardState{
				Leases: leases, Carried: takeRegistrySignals(signals), MaxHistory: st.MaxHistory,
			})
		}
		if timer == nil {
			if next := earliestExpiry(leases); !next.IsZero() {
				tctx, cancel := workflow.WithCancel(ctx)
				timer, cancelTimer, timerAt = workflow.NewTimer(tctx, max(next.Sub(workflow.Now(ctx)), time.Millisecond)), cancel, next
			}
		}
		fired, reset, cancelled := false, false, false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
			var s RegistrySignal
			c.Receive(ctx, &s)
			apply(s)
		})
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			reset = true
		})
		if timer != nil {
			sel.AddFuture(timer, func(workflow.Future) { fired = true })
		}
		sel.Select(ctx)
		if cancelled {
			return temporal.NewCanceledError()
		}
		// A registration that expires before the timer moves it earlier;
		// renewals only push expiries later and leave it alone, so they
		// cost no timer events.
		if reset && timer != nil && !fired {
			if next := earliestExpiry(leases); next.Before(timerAt) {
				cancelTimer()
				timer, timerAt = nil, time.Time{}
			}
		}
		if !fired {
			continue
		}
		timer, timerAt = nil, time.Time{}
		// Renewals delivered with the timer come first: a host that renewed
		// while no manager ran must not expire when one comes back.
		for _, s := range takeRegistrySignals(signals) {
			apply(s)
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

// clash refuses a registration whose id a live lease of another role holds.
func clash(leases map[string]Lease, r Registration, now time.Time) error {
	for _, other := range []Role{RoleBuilder, RoleInstaller} {
		if other == r.Role {
			continue
		}
		if l, ok := leases[string(other)+"/"+r.ID]; ok && l.Expires.After(now) {
			return fmt.Errorf("%s id %q is taken: a %s registered under it (its lease expires %s); give one of them another id (builder name, installer host) and start it again",
				r.Role, r.ID, other, l.Expires.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// takeRegistrySignals receives every signal already delivered, without
// waiting.
func takeRegistrySignals(c workflow.ReceiveChannel) []RegistrySignal {
	var out []RegistrySignal
	for {
		var s RegistrySignal
		if !c.ReceiveAsync(&s) {
			return out
		}
		out = append(out, s)
	}
}
