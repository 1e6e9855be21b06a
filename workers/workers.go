// Package workers wires relman's roles to Temporal: it creates the workers on
// the right task queues, registers workflows and activities under their
// explicit names, keeps the role's registration alive, and stops gracefully
// when the context ends (SIGTERM, SIGINT).
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/activities"
	authapi "github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/artifact"
	"github.com/relman/relman/internal/auth"
	"github.com/relman/relman/internal/realm"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// stopTimeout is how long a stopping worker lets running activities finish
// before it hands them back to Temporal for another worker.
const stopTimeout = 10 * time.Second

// RegisterManager registers the manager's workflows and activities on w.
func RegisterManager(w worker.Registry, a *activities.Manager) {
	w.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: workflows.ReleaseWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.Registry, workflow.RegisterOptions{Name: workflows.RegistryWorkflowName})
	// PlanRelease is Plan plus the environment's safety settings.
	w.RegisterActivityWithOptions(a.PlanRelease, activity.RegisterOptions{Name: workflows.PlanActivity})
	w.RegisterActivityWithOptions(a.EarlierBuild, activity.RegisterOptions{Name: workflows.EarlierBuildActivity})
	w.RegisterActivityWithOptions(a.Authorize, activity.RegisterOptions{Name: workflows.AuthorizeActivity})
	registerRollout(w, a)
}

// Manager runs the manager role until ctx ends: the Release and Registry
// workflows and the plan activity on the manager queue. Several managers on
// one queue share the work. Its realms are those of the config; Run takes
// more from code.
func Manager(ctx context.Context, c client.Client, cfg *config.Manager, log *slog.Logger) error {
	realms, err := Realms(cfg, nil)
	if err != nil {
		return err
	}
	return manager(ctx, c, cfg, log, realms)
}

// Realms builds a manager's realms: its users file, the realms of its
// config, and those registered in code (nil for none). The gateway and the
// manager worker of one process share them.
func Realms(cfg *config.Manager, code *authapi.Registry) (*authapi.Registry, error) {
	if !cfg.Auth.Enabled() {
		if len(code.Realms()) > 0 {
			return nil, fmt.Errorf("authenticators are registered in code (realms %s) but the config turns authentication off; list them under auth.realms", strings.Join(code.Realms(), ", "))
		}
		return &authapi.Registry{}, nil
	}
	return realm.Registry(cfg.Auth, code)
}

func manager(ctx context.Context, c client.Client, cfg *config.Manager, log *slog.Logger, realms *authapi.Registry) error {
	reg := registry.Registry{Client: c, ID: cfg.RegistryID, ManagerQueue: cfg.ManagerQueue}
	w := worker.New(c, cfg.ManagerQueue, worker.Options{WorkerStopTimeout: stopTimeout})
	var secret []byte
	switch {
	case cfg.Auth.Enabled():
		s, err := auth.LoadSecret(cfg.Auth.SecretFile)
		if err != nil {
			return fmt.Errorf("gateway secret: %w", err)
		}
		secret = s
		if cfg.Auth.Anonymous {
			log.Warn("anonymous requests are allowed as principal \"anonymous\"; the policy decides what they may do")
		}
	default:
		log.Warn("authentication is off (no auth.users_file or auth.realms): anyone who can reach Temporal or the gateway may build and install anything; not recommended")
	}
	if cfg.Auth.Enabled() {
		log.Info("realms", "names", realms.Realms())
	}
	RegisterManager(w, &activities.Manager{Config: cfg, Registry: reg, Transactions: transactions{c}, Secret: secret, Realms: realms})
	RegisterCoordinator(w, &activities.Coordinator{Client: c, Log: log})
	if err := w.Start(); err != nil {
		return fmt.Errorf("manager worker on %s: %w", cfg.ManagerQueue, err)
	}
	log.Info("manager started", "queue", cfg.ManagerQueue, "registry", cfg.RegistryID,
		"projects", len(cfg.Projects), "environments", len(cfg.Environments))
	<-ctx.Done()
	w.Stop()
	log.Info("manager stopped")
	return nil
}

// Builder runs a builder until ctx ends: one worker per advertised project on
// relman-build-<project>, and the builder's registration.
func Builder(ctx context.Context, c client.Client, cfg *config.Builder, log *slog.Logger) error {
	store, err := artifact.OpenStore(ctx, cfg.Artifacts)
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer store.Close()
	a := &activities.Builder{Config: cfg, Store: store, Log: log}
	var ws []worker.Worker
	var projects []string
	for p := range cfg.Projects {
		w := worker.New(c, workflows.BuildQueue(p), worker.Options{WorkerStopTimeout: stopTimeout})
		w.RegisterActivityWithOptions(a.Build, activity.RegisterOptions{Name: workflows.BuildActivity})
		ws = append(ws, w)
		projects = append(projects, p)
	}
	reg := workflows.Registration{Role: workflows.RoleBuilder, ID: cfg.Name, Projects: projects, Lease: cfg.Lease}
	return serve(ctx, c, cfg.Service, ws, reg, log)
}

// Installer runs an installer host until ctx ends: one worker on its own
// queue relman-host-<host>, and the host's registration of every
// (environment, named target) it installs.
func Installer(ctx context.Context, c client.Client, cfg *config.Installer, log *slog.Logger) error {
	store, err := artifact.OpenStore(ctx, cfg.Artifacts)
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer store.Close()
	// Downloads left by an installer that was killed are never resumed:
	// every install downloads afresh. Nothing else uses the directory.
	if err := os.RemoveAll(filepath.Join(cfg.WorkDir, "downloads")); err != nil {
		log.Warn("stale downloads not removed", "error", err)
	}
	a := &activities.Installer{Config: cfg, Store: store, Log: log}
	w := worker.New(c, workflows.HostQueue(cfg.Host), worker.Options{WorkerStopTimeout: stopTimeout})
	w.RegisterActivityWithOptions(a.Install, activity.RegisterOptions{Name: workflows.InstallActivity})
	registerRolloutInstaller(w, a)
	targets := map[string][]string{}
	for env, ts := range cfg.Environments {
		for t := range ts {
			targets[env] = append(targets[env], t)
		}
	}
	reg := workflows.Registration{Role: workflows.RoleInstaller, ID: cfg.Host, Targets: targets, Lease: cfg.Lease}
	return serve(ctx, c, cfg.Service, []worker.Worker{w}, reg, log)
}

// serve starts the workers, keeps the registration renewed, and on the end
// of ctx deregisters first (so no new work is planned here) and then stops
// the workers.
func serve(ctx context.Context, c client.Client, svc config.Service, ws []worker.Worker, reg workflows.Registration, log *slog.Logger) error {
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
	r := registry.Registry{Client: c, ID: svc.RegistryID, ManagerQueue: svc.ManagerQueue}
	kctx, stopKeep := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Keep(kctx, reg, func(err error) {
			if !errors.Is(err, context.Canceled) {
				log.Warn("registration not renewed; retrying", "error", err)
			}
		})
	}()
	log.Info(string(reg.Role)+" started", "id", reg.ID, "projects", reg.Projects, "targets", reg.Targets, "lease", reg.Lease)
	<-ctx.Done()
	stopKeep()
	<-done
	log.Info(string(reg.Role) + " stopped")
	return nil
}

// transactions reads other transactions through the client.
type transactions struct{ c client.Client }

func (t transactions) Get(ctx context.Context, txid string) (*workflows.Detail, error) {
	return transaction.Get(ctx, t.c, txid)
}
