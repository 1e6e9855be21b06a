package workers

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/secretfile"
	"github.com/relman/relman/workflows"
)

// builder runs one worker per manager it serves and advertised project, on
// that manager's build queue of the project (workflows.BuildQueue), and
// keeps the builder's registration with every manager.
func (r *role) builder(ctx context.Context, cfg *config.Builder) error {
	store, err := r.openStore(ctx, cfg.Artifacts)
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := secretfile.LoadOrCreate(cfg.SigningKeyFile, 32, r.warn)
	if err != nil {
		return fmt.Errorf("build record signing key: %w", err)
	}
	a := &activities.Builder{Config: cfg, Store: store, Log: r.log, Key: key}
	var ws []worker.Worker
	projects := slices.Sorted(maps.Keys(cfg.Projects))
	for _, m := range cfg.Served() {
		for _, p := range projects {
			// A builder runs no workflow: no workflow task polls (see
			// installer.go).
			w := worker.New(r.client, workflows.BuildQueue(m.ManagerQueue, p), worker.Options{WorkerStopTimeout: stopTimeout, DisableWorkflowWorker: true})
			registerActivities(w, builderActivities(a))
			ws = append(ws, w)
		}
	}
	reg := workflows.Registration{Role: workflows.RoleBuilder, ID: cfg.Name, Projects: projects, Lease: cfg.Lease}
	return r.serve(ctx, cfg.Served(), ws, reg)
}
