package workers

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/artifact"
	"github.com/relman/relman/workflows"
)

// builder runs one worker per advertised project on
// relman-build-<project>, and keeps the builder's registration.
func (r *role) builder(ctx context.Context, cfg *config.Builder) error {
	store, err := artifact.OpenStore(ctx, cfg.Artifacts)
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer store.Close()
	a := &activities.Builder{Config: cfg, Store: store, Log: r.log}
	var ws []worker.Worker
	var projects []string
	for _, p := range slices.Sorted(maps.Keys(cfg.Projects)) {
		// A builder runs no workflow: no workflow task polls (see
		// installer.go).
		w := worker.New(r.client, workflows.BuildQueue(p), worker.Options{WorkerStopTimeout: stopTimeout, DisableWorkflowWorker: true})
		registerActivities(w, builderActivities(a))
		ws = append(ws, w)
		projects = append(projects, p)
	}
	reg := workflows.Registration{Role: workflows.RoleBuilder, ID: cfg.Name, Projects: projects, Lease: cfg.Lease}
	return r.serve(ctx, &cfg.Service, ws, reg)
}
