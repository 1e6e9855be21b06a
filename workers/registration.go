package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/workflows"
)

// deregisterTimeout bounds the goodbye to the registry at a stop: a
// registry that does not answer must not hold the stop up, the lease
// expires on its own.
const deregisterTimeout = 3 * time.Second

// serve starts a builder's or host's workers, keeps its registration alive
// until ctx ends, then deregisters first (so no new work is planned here)
// and stops the workers.
func (r *role) serve(ctx context.Context, svc *config.Service, ws []worker.Worker, reg workflows.Registration) error {
	var started []worker.Worker
	defer func() {
		for _, w := range started {
			w.Stop()
		}
	}()
	for _, w := range ws {
		if err := w.Start(); err != nil {
			return fmt.Errorf("%s worker: %w", reg.Role, err)
		}
		started = append(started, w)
	}
	g := registry.Registry{Client: r.client, ID: svc.RegistryID, ManagerQueue: svc.ManagerQueue}
	reg.Instance = uuid.NewString()
	r.log.Info(r.name+" started", "id", reg.ID, "projects", reg.Projects, "targets", reg.Targets, "lease", reg.Lease)
	r.keepRegistered(ctx, g, reg)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
	defer cancel()
	if err := g.Deregister(dctx, reg.Role, reg.ID, reg.Instance); err != nil {
		r.log.Warn("not deregistered; the lease expires on its own", "error", err)
	}
	r.log.Info(r.name + " stopped")
	return nil
}

// keepRegistered registers reg, then renews it every lease/3 until ctx
// ends. The registration is an answered update; renewals are signals the
// server takes whether or not a manager runs (registry.Registry.Renew). A
// failed attempt is logged and tried again soon: the role keeps serving
// while its registry is away, and is not ready until the registration holds
// again. A refused registration (its id is another role's) is tried again
// every lease/3, its reason logged as an error.
func (r *role) keepRegistered(ctx context.Context, g registry.Registry, reg workflows.Registration) {
	every := max(reg.Lease/3, time.Second)
	registered := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, every)
			t0 := time.Now()
			var err error
			if registered {
				err = g.Renew(rctx, reg)
			} else {
				_, err = g.Register(rctx, reg)
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			if r.opts.Registration != nil {
				r.opts.Registration(RegistrationEvent{ID: reg.ID, Renewal: registered, Took: time.Since(t0), Err: err})
			}
			switch {
			case err == nil:
				registered = true
				r.ready(Serving{})
				t.Reset(every)
			case errors.Is(err, registry.ErrRefused):
				r.log.Error("registration refused; trying again", "registry", g.ID, "error", err, "in", every)
				r.status.notReady(err.Error())
				t.Reset(every)
			default:
				r.log.Warn("registration not renewed; retrying", "registry", g.ID, "error", err)
				r.status.notReady(fmt.Sprintf("registration with %s not renewed: %v", g.ID, err))
				t.Reset(2 * time.Second)
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
