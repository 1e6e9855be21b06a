package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/workflows"
)

// deregisterTimeout bounds the goodbye to the registries at a stop: a
// registry that does not answer must not hold the stop up, the lease
// expires on its own.
const deregisterTimeout = config.DefaultDeregisterTimeout

// reachTimeout bounds the check that Temporal answers at all before the
// goodbye: the frontend answers it without a workflow task, so a healthy
// server answers well within it, and an unreachable one does not hold the
// stop up for deregisterTimeout.
const reachTimeout = config.DefaultReachTimeout

// serve starts a builder's or host's workers, keeps its registration with
// every manager it serves alive until ctx ends, then deregisters from each
// first (so no new work is planned here) and stops the workers. A registry
// that turns out to be another manager's stops the role: two managers were
// given one registry id, and retrying cannot fix that.
func (r *role) serve(ctx context.Context, managers []config.ManagerRef, ws []worker.Worker, reg workflows.Registration) error {
	var started []worker.Worker
	away := false
	defer func() { r.stopWorkers(away, started...) }()
	for _, w := range ws {
		if err := w.Start(); err != nil {
			return fmt.Errorf("%s worker: %w", reg.Role, err)
		}
		started = append(started, w)
	}
	names := make([]string, len(managers))
	regs := make([]registry.Registry, len(managers))
	for i, m := range managers {
		names[i] = m.ManagerQueue
		regs[i] = registry.Registry{Client: r.client, ID: m.RegistryID, ManagerQueue: m.ManagerQueue}
	}
	// The instance names this run of the role, so a late goodbye from
	// an earlier run never removes a new registration.
	reg.Instance = uuid.NewString()
	r.log.Info(r.name+" started", "id", reg.ID, "managers", names, "projects", reg.Projects, "targets", reg.Targets, "lease", reg.Lease)

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	held := newLeases(r, len(regs))
	var fatal error
	var once sync.Once
	var wg sync.WaitGroup
	for i, g := range regs {
		wg.Go(func() {
			if err := r.keepRegistered(rctx, g, reg, i, held); err != nil {
				once.Do(func() { fatal = err; stop() })
			}
		})
	}
	wg.Wait()

	if err := r.reachable(ctx); err != nil {
		r.log.Warn("Temporal does not answer; not deregistered, the leases expire on their own", "error", err)
		regs = nil
		away = true
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
	defer cancel()
	for _, g := range regs {
		wg.Go(func() {
			if err := g.Deregister(dctx, reg.Role, reg.ID, reg.Instance); err != nil {
				r.log.Warn("not deregistered; the lease expires on its own", "registry", g.ID, "error", err)
			}
		})
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	r.log.Info(r.name + " stopped")
	return nil
}

// awayStopWait bounds a stop while Temporal does not answer: the workers'
// goodbye to the server (the SDK's ShutdownWorker call, up to 10 s) would
// hold it, and a running activity could not report its result anyway.
const awayStopWait = config.DefaultAwayStopWait

// stopWorkers stops ws together: each waits up to stopTimeout for its
// running activities, and one after the other they would add up. When
// Temporal is away (it did not answer reachable) the stop waits at most
// awayStopWait; what is still running is abandoned to Temporal's timeouts
// and retries, as if the process had been killed.
func (r *role) stopWorkers(away bool, ws ...worker.Worker) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(w.Stop)
		}
		wg.Wait()
	}()
	if !away {
		<-done
		return
	}
	select {
	case <-done:
	case <-time.After(awayStopWait):
		r.log.Warn("Temporal does not answer; stopped without waiting for the workers' goodbye", "waited", awayStopWait)
	}
}

// reachable checks that Temporal answers, within reachTimeout. A frontend
// (or a proxy before it) without the health service answers too.
func (r *role) reachable(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reachTimeout)
	defer cancel()
	_, err := r.client.CheckHealth(hctx, &client.CheckHealthRequest{})
	var unimplemented *serviceerror.Unimplemented
	if errors.As(err, &unimplemented) {
		return nil
	}
	return err
}

// leases tracks which managers hold the role's registration: the role is
// ready while every one does.
type leases struct {
	r   *role
	mu  sync.Mutex
	ok  []bool
	why []string // why a manager's registration does not hold; "" not known yet
}

func newLeases(r *role, n int) *leases {
	return &leases{r: r, ok: make([]bool, n), why: make([]string, n)}
}

// set records whether manager i holds the registration: why is empty when
// it does.
func (l *leases) set(i int, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ok[i], l.why[i] = why == "", why
	if !slices.Contains(l.ok, false) {
		l.r.ready(Serving{})
		return
	}
	var whys []string
	for j, ok := range l.ok {
		if !ok && l.why[j] != "" {
			whys = append(whys, l.why[j])
		}
	}
	if len(whys) > 0 {
		l.r.status.notReady(strings.Join(whys, "; "))
	}
}

// keepRegistered registers reg with one manager's registry g, then renews
// it every lease/3 until ctx ends. The registration is an answered update;
// renewals are signals the server takes whether or not a manager runs
// (registry.Registry.Renew). A failed attempt is logged and tried again
// soon: the role keeps serving while its registry is away, and is not
// ready until the registration holds again. A refused registration (its id
// is another role's) is tried again every lease/3, its reason logged as an
// error. It returns an error only when g is another manager's registry.
func (r *role) keepRegistered(ctx context.Context, g registry.Registry, reg workflows.Registration, i int, held *leases) error {
	every := max(reg.Lease/3, config.DefaultMinRenewEvery)
	registered, checked := false, false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, every)
			t0 := time.Now()
			var err error
			if registered {
				err = g.Renew(rctx, reg)
			} else {
				_, err = g.Register(rctx, reg)
			}
			if err == nil && !checked {
				// The registry runs where the first to register started it:
				// a registry id two managers share runs on one queue only.
				err = g.CheckShardOwner(rctx, reg.ID)
				if errors.Is(err, registry.ErrOtherManager) {
					cancel()
					r.log.Error("registered with another manager's registry; stopping", "registry", g.ID, "manager_queue", g.ManagerQueue, "error", err)
					return fmt.Errorf("%s %s: %w", r.name, reg.ID, err)
				}
				checked = err == nil
			}
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if r.opts.Registration != nil {
				r.opts.Registration(RegistrationEvent{ID: reg.ID, Renewal: registered, Took: time.Since(t0), Err: err})
			}
			switch {
			case err == nil:
				registered = true
				held.set(i, "")
				t.Reset(every)
			case errors.Is(err, registry.ErrRefused):
				r.log.Error("registration refused; trying again", "registry", g.ID, "error", err, "in", every)
				held.set(i, err.Error())
				t.Reset(every)
			default:
				if !errors.Is(err, context.Canceled) {
					r.log.Warn("registration not renewed; retrying", "registry", g.ID, "manager_queue", g.ManagerQueue, "error", err)
				}
				held.set(i, fmt.Sprintf("registration with %s not renewed: %v", g.ID, err))
				t.Reset(config.DefaultRenewRetry)
			}
		}
	}
}

// RegistrationEvent is one registration or renewal a builder or host made
// (Options.Registration).
type RegistrationEvent struct {
	ID string
	// Renewal is false for the first registration (an update the registry
	// answers), true for a renewal (a signal the server stores).
	Renewal bool
	Took    time.Duration
	Err     error
}
