package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	r.log.Info(r.name+" started", "id", reg.ID, "projects", reg.Projects, "targets", reg.Targets, "lease", reg.Lease)
	r.keepRegistered(ctx, g, reg)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
	defer cancel()
	if err := g.Deregister(dctx, reg.Role, reg.ID); err != nil {
		r.log.Warn("not deregistered; the lease expires on its own", "error", err)
	}
	r.log.Info(r.name + " stopped")
	return nil
}

// keepRegistered registers reg and renews it every lease/3 until ctx ends.
// A failed renewal is logged and tried again soon: the role keeps serving
// while its manager is away, and is not ready until the registration
// holds again.
func (r *role) keepRegistered(ctx context.Context, g registry.Registry, reg workflows.Registration) {
	every := max(reg.Lease/3, time.Second)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, every)
			_, err := g.Register(rctx, reg)
			cancel()
			switch {
			case err == nil:
				r.ready(Serving{})
				t.Reset(every)
			case ctx.Err() != nil:
				return
			default:
				if !errors.Is(err, context.Canceled) {
					r.log.Warn("registration not renewed; retrying", "registry", g.ID, "error", err)
				}
				r.status.notReady(fmt.Sprintf("registration with %s not renewed: %v", g.ID, err))
				t.Reset(2 * time.Second)
			}
		}
	}
}
