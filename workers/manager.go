package workers

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/activities"
	authapi "github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/artifact"
	"github.com/relman/relman/internal/auth"
	"github.com/relman/relman/internal/realm"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/internal/xmlrpc"
)

// manager runs the workflows and the manager's activities on the manager
// queue, and the XML-RPC gateway beside them. Several managers on one
// queue share the work.
func (r *role) manager(ctx context.Context, cfg *config.Manager) error {
	var secret []byte
	switch {
	case cfg.Auth.Enabled():
		s, err := auth.LoadSecret(cfg.Auth.SecretFile)
		if err != nil {
			return fmt.Errorf("gateway secret: %w", err)
		}
		secret = s
		if cfg.Auth.Anonymous {
			r.log.Warn("anonymous requests are allowed as principal \"anonymous\"; the policy decides what they may do")
		}
	default:
		r.log.Warn("authentication is off (no auth.users_file or auth.realms): anyone who can reach Temporal or the gateway may build and install anything; not recommended")
	}
	// The gateway and the manager's activities share one set of realms.
	realms, err := Realms(cfg, r.opts.Authenticators)
	if err != nil {
		return err
	}
	if cfg.Auth.Enabled() {
		r.log.Info("realms", "names", realms.Realms())
	}
	r.checkRetention(ctx, cfg)
	keeper, closeRecords, err := r.records(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeRecords()
	// Reads of transactions Temporal no longer has fall back to the
	// records: the gateway's, and an install from an earlier build.
	reader := transaction.Reader{Client: r.client}
	var store artifact.Store
	if keeper != nil {
		reader.Records, store = keeper, keeper.Store()
	}
	var serving Serving
	if !cfg.Gateway.Off {
		// The gateway for the seed's clients; a port that cannot be opened
		// stops the role.
		gw, err := xmlrpc.ListenGateway(r.client, cfg, r.log.With("component", "xml-rpc"), r.opts.GatewayAddress, realms, reader.Records)
		if err != nil {
			return err
		}
		defer gw.Close()
		serving.GatewayURL = gw.URL()
		r.log.Info("xml-rpc gateway listening", "url", gw.URL())
	}
	w := worker.New(r.client, cfg.ManagerQueue, worker.Options{WorkerStopTimeout: stopTimeout})
	RegisterWorkflows(w)
	registerActivities(w, managerActivities(
		&activities.Manager{
			Config:       cfg,
			Registry:     registry.Registry{Client: r.client, ID: cfg.RegistryID, ManagerQueue: cfg.ManagerQueue},
			Transactions: reader,
			Store:        store,
			Secret:       secret,
			Realms:       realms,
		},
		&activities.Coordinator{Client: r.client, Log: r.log},
		&activities.Records{Keeper: keeper, Client: r.client},
	))
	if err := w.Start(); err != nil {
		return fmt.Errorf("manager worker on %s: %w", cfg.ManagerQueue, err)
	}
	r.log.Info("manager started", "queue", cfg.ManagerQueue, "registry", cfg.RegistryID,
		"projects", len(cfg.Projects), "environments", len(cfg.Environments))
	r.ready(serving)
	<-ctx.Done()
	w.Stop()
	r.log.Info("manager stopped")
	return nil
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
