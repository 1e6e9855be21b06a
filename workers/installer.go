package workers

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// installer runs one worker per manager it serves on the host's own queue
// of that manager (workflows.HostQueue), and keeps the host's registration
// of every (environment, named target) it installs with every manager.
func (r *role) installer(ctx context.Context, cfg *config.Installer) error {
	store, err := r.openStore(ctx, cfg.Artifacts)
	if err != nil {
		return err
	}
	defer store.Close()
	// Downloads left by an installer that was killed are never resumed:
	// every install downloads afresh. Nothing else uses the directory.
	if err := os.RemoveAll(filepath.Join(cfg.WorkDir, "downloads")); err != nil {
		r.log.Warn("stale downloads not removed", "error", err)
	}
	// The host runs only orders its managers signed: without a key to
	// check them by it would refuse everything. (Config validation says
	// so first; this holds for configs made in code.)
	t := cfg.Trust
	if len(t.ManagerKeys) == 0 && len(t.ManagerKeyFiles) == 0 {
		return fmt.Errorf("installer %s trusts no manager key, so it would refuse every order: set trust.manager_keys to what relman manager-key --config manager.yaml prints, or trust.manager_key_files to the manager's orders.key.pub", cfg.Host)
	}
	for _, f := range t.ManagerKeyFiles {
		// Read again at each order: one the manager writes later counts.
		if _, err := auth.ReadManagerKeyFile(f); err != nil {
			r.log.Warn("manager key file not readable yet; orders are refused until it is", "error", err)
		}
	}
	a := &activities.Installer{Config: cfg, Store: store, Log: r.log, Behaviors: r.opts.Behaviors}
	if n, err := a.PruneOrders(time.Now()); err != nil {
		r.log.Warn("order ledger not pruned", "error", err)
	} else if n > 0 {
		r.log.Info("order ledger pruned of expired orders", "removed", n)
	}
	// One long poll per host and manager: every poller is one the Temporal
	// frontend counts against its limit per namespace and API
	// (frontend.namespaceCount, 1,200 by default), which a thousand hosts
	// with the SDK's defaults (two activity pollers, and two workflow
	// pollers although a host runs no workflow) would pass, starving the
	// manager's own polls. A host gets a few installs at a time; one
	// poller picks them up one after the other.
	var ws []worker.Worker
	for _, m := range cfg.Served() {
		w := worker.New(r.client, workflows.HostQueue(m.ManagerQueue, cfg.Host), worker.Options{
			WorkerStopTimeout:                stopTimeout,
			MaxConcurrentActivityTaskPollers: 1,
			DisableWorkflowWorker:            true,
		})
		registerActivities(w, installerActivities(a))
		ws = append(ws, w)
	}
	targets := map[string][]string{}
	for env, ts := range cfg.Environments {
		targets[env] = slices.Sorted(maps.Keys(ts))
	}
	reg := workflows.Registration{Role: workflows.RoleInstaller, ID: cfg.Host, Targets: targets, Lease: cfg.Lease}
	return r.serve(ctx, cfg.Served(), ws, reg)
}
