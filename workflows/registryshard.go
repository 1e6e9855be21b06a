package workflows

import (
	"fmt"
	"hash/fnv"
	"time"

	"go.temporal.io/sdk/log"
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
	s := &shard{
		ctx:     ctx,
		st:      st,
		leases:  st.Leases,
		logger:  workflow.GetLogger(ctx),
		signals: workflow.GetSignalChannel(ctx, RegistrySignalName),
		wake:    workflow.NewBufferedChannel(ctx, 1),
	}
	if s.leases == nil {
		s.leases = map[string]Lease{}
	}
	if err := workflow.SetQueryHandler(ctx, RegistrationsQuery, s.registrations); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, RegisterUpdate, s.register,
		workflow.UpdateHandlerOptions{Validator: s.acceptRegister}); err != nil {
		return err
	}
	return s.run()
}

// shard is the state of a RegistryShard's run.
type shard struct {
	ctx     workflow.Context
	st      RegistryShardState
	leases  map[string]Lease
	logger  log.Logger
	signals workflow.ReceiveChannel
	// wake tells the main loop that a registration expires before its
	// timer, so the timer must be set again.
	wake    workflow.Channel
	timerAt time.Time
}

func (s *shard) registrations() ([]Lease, error) { return sortedLeases(s.leases), nil }

// acceptRegister is the register update's validator.
func (s *shard) acceptRegister(ctx workflow.Context, r Registration) error {
	if err := validateRegistration(ctx, r); err != nil {
		return err
	}
	now := workflow.Now(ctx)
	if err := clash(s.leases, r, now); err != nil {
		return err
	}
	if _, ok := s.leases[r.Key()]; !ok && len(s.leases) >= maxShardLeases {
		return fmt.Errorf("registry shard %s holds %d registrations, its limit; relman is sized for %d per shard (%d shards), so ids are unevenly spread or the fleet is past what one registry holds",
			workflow.GetInfo(ctx).WorkflowExecution.ID, len(s.leases), maxShardLeases, RegistryShards)
	}
	return nil
}

// register (update RegisterUpdate) registers or renews r.
func (s *shard) register(ctx workflow.Context, r Registration) (Lease, error) {
	return s.put(r, workflow.Now(ctx)), nil
}

func (s *shard) put(r Registration, now time.Time) Lease {
	l := putLease(s.leases, r, now, s.logger)
	if s.timerAt.IsZero() || l.Expires.Before(s.timerAt) {
		s.wake.SendAsync(true)
	}
	return l
}

// apply handles one RegistrySignalName signal: a renewal or a
// deregistration.
func (s *shard) apply(sig RegistrySignal) {
	now := workflow.Now(s.ctx)
	switch {
	case sig.Renew != nil:
		if err := validateRegistration(s.ctx, *sig.Renew); err != nil {
			s.logger.Warn("renewal ignored", "error", err)
			return
		}
		if err := clash(s.leases, *sig.Renew, now); err != nil {
			s.logger.Warn("renewal ignored", "error", err)
			return
		}
		s.put(*sig.Renew, now)
	case sig.Deregister != nil:
		d := sig.Deregister
		key := string(d.Role) + "/" + d.ID
		// An update can overtake a signal sent before it (update handlers
		// run first in a workflow task), so the goodbye of a process that
		// has since started again can arrive after its new registration:
		// it names its own run, and leaves the new one alone.
		if l, ok := s.leases[key]; ok && d.Instance != "" && l.Instance != "" && l.Instance != d.Instance {
			s.logger.Info("deregistration of an earlier run ignored", "role", d.Role, "id", d.ID)
			return
		}
		delete(s.leases, key)
		s.logger.Info("deregistered", "role", d.Role, "id", d.ID)
	}
}

// carry is the next run's input: the leases and the signals delivered
// but not yet applied.
func (s *shard) carry() (any, bool) {
	return RegistryShardState{
		Leases: s.leases, Carried: takeRegistrySignals(s.signals), MaxHistory: s.st.MaxHistory,
	}, true
}

// run is the main loop: it applies the signals carried over, then waits
// for signals and the earliest expiry until it continues as new.
func (s *shard) run() error {
	ctx := s.ctx
	maxHistory := s.st.MaxHistory
	if maxHistory <= 0 {
		maxHistory = defaultShardHistory
	}
	for _, sig := range s.st.Carried {
		s.apply(sig)
	}
	var timer workflow.Future
	cancelTimer := func() {}
	for {
		if historyFull(ctx, maxHistory) {
			return continueAsNew(ctx, RegistryShardWorkflowName, nil, s.carry)
		}
		if timer == nil {
			if next := earliestExpiry(s.leases); !next.IsZero() {
				tctx, cancel := workflow.WithCancel(ctx)
				timer, cancelTimer, s.timerAt = workflow.NewTimer(tctx, max(next.Sub(workflow.Now(ctx)), time.Millisecond)), cancel, next
			}
		}
		fired, reset, cancelled := false, false, false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
		sel.AddReceive(s.signals, func(c workflow.ReceiveChannel, _ bool) {
			var sig RegistrySignal
			c.Receive(ctx, &sig)
			s.apply(sig)
		})
		sel.AddReceive(s.wake, func(c workflow.ReceiveChannel, _ bool) {
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
			if next := earliestExpiry(s.leases); next.Before(s.timerAt) {
				cancelTimer()
				timer, s.timerAt = nil, time.Time{}
			}
		}
		if !fired {
			continue
		}
		timer, s.timerAt = nil, time.Time{}
		s.expire()
	}
}

// expire drops the leases past their expiry. Renewals delivered with the
// timer come first: a host that renewed while no manager ran must not
// expire when one comes back.
func (s *shard) expire() {
	for _, sig := range takeRegistrySignals(s.signals) {
		s.apply(sig)
	}
	now := workflow.Now(s.ctx)
	for _, k := range sortedKeys(s.leases) {
		if l := s.leases[k]; !l.Expires.After(now) {
			delete(s.leases, k)
			s.logger.Warn("lease expired", "role", l.Role, "id", l.ID, "renewed", l.Renewed)
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
