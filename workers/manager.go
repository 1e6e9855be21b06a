package workers

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/realm"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/secretfile"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// manager runs the workflows and the manager's activities on the manager
// queue, and the XML-RPC gateway beside them. Several managers on one
// queue share the work.
func (r *role) manager(ctx context.Context, cfg *config.Manager) error {
	var secret []byte
	switch {
	case cfg.Auth.Enabled():
		s, err := secretfile.LoadOrCreate(cfg.Auth.SecretFile, 32, r.warn)
		if err != nil {
			return fmt.Errorf("gateway secret: %w", err)
		}
		secret = s
		// The users file holds password hashes: read them and they can be
		// cracked offline.
		secretfile.Check(cfg.Auth.UsersFile, r.warn)
		if cfg.Auth.Anonymous {
			r.log.Warn("anonymous requests are allowed as principal \"anonymous\"; the policy decides what they may do")
		}
	default:
		r.log.Warn("authentication is off (no auth.users_file or auth.realms): anyone who can reach Temporal or the gateway may build and install anything; not recommended")
		for _, name := range slices.Sorted(maps.Keys(cfg.Environments)) {
			if cfg.Environments[name].Protected {
				r.log.Warn(fmt.Sprintf("environment %s is protected, but with authentication off anyone may approve releases into it under any name", name))
			}
		}
	}
	// Without its search attributes no transaction could start: every
	// workflow task would fail on the first upsert, logged only at INFO.
	checked, err := temporalclient.CheckSearchAttributes(ctx, r.client, cfg.Temporal.Namespace)
	if err != nil {
		return err
	}
	if !checked {
		r.log.Warn("could not list the namespace's search attributes (no operator rights?); make sure " + strings.Join(workflows.SearchAttributes, ", ") + " exist as Keyword (`relman namespace prepare` with operator rights adds them)")
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
	reader := transaction.Reader{Client: r.client, Namespace: cfg.Temporal.Namespace, Queue: cfg.ManagerQueue}
	var store artifact.Store
	if keeper != nil {
		reader.Records, store = keeper, keeper.Store()
	}
	var serving Serving
	if !cfg.Gateway.Off {
		// The gateway for the seed's clients; a port that cannot be opened
		// stops the role.
		gw, err := r.opts.Gateway(GatewayEnv{
			Client: r.client, Config: cfg, Log: r.log.With("component", "xml-rpc"), Realms: realms, Secret: secret, Records: reader.Records,
			Address: r.opts.GatewayAddress,
		})
		if err != nil {
			return err
		}
		defer gw.Close()
		serving.GatewayURL = gw.URL()
		r.log.Info("xml-rpc gateway listening", "url", gw.URL())
	}
	// A registry id another manager uses already would mix the two
	// managers' builders and hosts: refuse to start rather than plan onto
	// the other's.
	reg := registry.Registry{Client: r.client, ID: cfg.RegistryID, ManagerQueue: cfg.ManagerQueue, Known: &registry.Known{}}
	switch err := reg.CheckOwner(ctx); {
	case errors.Is(err, registry.ErrOtherManager):
		return fmt.Errorf("manager on %s: %w", cfg.ManagerQueue, err)
	case err != nil && ctx.Err() == nil:
		r.log.Warn("registry not checked", "registry", cfg.RegistryID, "error", err)
	}
	// Installers run only orders signed with this key. The workflows sign
	// them; the key reaches them only through this worker's interceptor,
	// in memory, never in a payload.
	orderKey, err := auth.LoadOrderKey(cfg.OrdersKeyFile, r.warn)
	if err != nil {
		return err
	}
	orderPub := orderKey.Public().(ed25519.PublicKey)
	pubFile, err := auth.WriteOrderPublicKey(cfg.OrdersKeyFile, orderPub)
	if err != nil {
		return err
	}
	r.log.Info("orders to hosts signed", "key_file", cfg.OrdersKeyFile, "key_id", auth.OrderKeyID(orderPub),
		"public_key", auth.EncodeManagerKey(orderPub), "public_key_file", pubFile)
	w := worker.New(r.client, cfg.ManagerQueue, worker.Options{
		WorkerStopTimeout: stopTimeout,
		Interceptors: []interceptor.WorkerInterceptor{workflows.OrderSigning(&workflows.OrderSigner{
			Key: orderKey, Namespace: cfg.Temporal.Namespace, Queue: cfg.ManagerQueue,
		})},
	})
	RegisterWorkflows(w)
	registerActivities(w, managerActivities(
		&activities.Manager{
			Config: cfg,
			// Plans asked at once (a burst of releases) share one read
			// of the registry's shards.
			Registry:     &registry.Shared{Lister: reg},
			Transactions: reader,
			Runs:         runs{r},
			Store:        store,
			Secret:       secret,
			Realms:       realms,
		},
		&activities.Coordinator{Client: r.client, Config: cfg, Log: r.log},
		&activities.Records{Keeper: keeper, Client: r.client},
	))
	if err := w.Start(); err != nil {
		return fmt.Errorf("manager worker on %s: %w", cfg.ManagerQueue, err)
	}
	r.log.Info("manager started", "queue", cfg.ManagerQueue, "registry", cfg.RegistryID,
		"projects", len(cfg.Projects), "environments", len(cfg.Environments))
	for _, line := range cfg.Implied() {
		r.log.Info(line)
	}
	r.ready(serving)
	<-ctx.Done()
	away := r.reachable(ctx)
	if away != nil {
		r.log.Warn("Temporal does not answer; stopping without waiting for it", "error", away)
	}
	r.stopWorkers(away != nil, w)
	r.log.Info("manager stopped")
	return nil
}

// runs finds other runs of a workflow id through visibility.
type runs struct{ r *role }

// runsWait bounds how long OtherRuns waits for visibility to show the run
// that asks.
const runsWait = config.DefaultRunsWait

// OtherRuns counts the runs of id other than runID. Visibility lags behind
// the history (under load, by seconds), so it first waits until runID
// itself is listed: the runs before it started before it, and by then are
// listed too. id is a transaction id the manager has checked (a uuid or
// r-<hex>), so it quotes safely.
func (x runs) OtherRuns(ctx context.Context, id, runID string) (int, error) {
	if strings.ContainsAny(id, `'"\`) {
		return 0, fmt.Errorf("workflow id %q cannot be looked up", id)
	}
	ctx, cancel := context.WithTimeout(ctx, runsWait)
	defer cancel()
	for {
		n, self, err := x.list(ctx, id, runID)
		if err != nil {
			return 0, err
		}
		if self {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("visibility has not listed run %s of %s within %s; try again", runID, id, runsWait)
		case <-time.After(config.DefaultPollStep):
		}
	}
}

// list counts the listed runs of id other than runID, and says whether
// runID itself is listed.
func (x runs) list(ctx context.Context, id, runID string) (others int, self bool, err error) {
	var token []byte
	for {
		resp, err := x.r.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = '%s'", id), NextPageToken: token,
		})
		if err != nil {
			return 0, false, err
		}
		for _, e := range resp.GetExecutions() {
			if e.GetExecution().GetRunId() == runID {
				self = true
			} else {
				others++
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return others, self, nil
		}
	}
}

// Realms builds a manager's realms: its users file, the realms of its
// config, and those registered in code (nil for none). The gateway and the
// manager worker of one process share them.
func Realms(cfg *config.Manager, code *auth.Registry) (*auth.Registry, error) {
	if !cfg.Auth.Enabled() {
		if len(code.Realms()) > 0 {
			return nil, fmt.Errorf("authenticators are registered in code (realms %s) but the config turns authentication off; list them under auth.realms", strings.Join(code.Realms(), ", "))
		}
		return &auth.Registry{}, nil
	}
	return realm.Registry(cfg.Auth, code)
}
