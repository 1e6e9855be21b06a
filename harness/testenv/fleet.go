package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workers"
)

// FleetOptions say what simulated hosts to run.
type FleetOptions struct {
	// Address of the Temporal server.
	Address string
	// Hosts is how many installer hosts to run.
	Hosts int
	// Config is host i's installer config (loaded and defaulted, as
	// FleetHost makes it): its own host id, work dir and install paths.
	Config func(i int) (*config.Installer, error)
	// HostsPerClient is how many hosts share one Temporal client (one
	// gRPC connection); default 100.
	HostsPerClient int
	// Spread starts the hosts evenly over this long, as a fleet's machines
	// would come up, not all in one instant.
	Spread time.Duration
	// Logger is every host's log; nil: errors only, to stderr.
	Logger *slog.Logger
	// Registration is called after each registration and renewal of any
	// host (concurrently), besides the counts the fleet keeps.
	Registration func(workers.RegistrationEvent)
}

// Fleet is N simulated installer hosts in this process: each a real
// installer run by workers.Run (the production activities, host queue,
// registration and renewal loop) with its own config, host id, host queue
// and install root; only the process and a few Temporal clients are
// shared, so a 2-core machine can run a thousand of them.
type Fleet struct {
	clients []client.Client
	hosts   []*fleetHost

	mu    sync.Mutex
	stats RegistrationStats
}

type fleetHost struct {
	cfg *config.Installer
	run *workers.Running
}

// RegistrationStats counts what a fleet's hosts did with the registry.
type RegistrationStats struct {
	Registrations, Renewals int
	// Failures are registrations and renewals that returned an error;
	// Errors holds the first few.
	Failures int
	Errors   []string
	// RenewalLatencies are the renewals' durations, in the order they
	// ended.
	RenewalLatencies []time.Duration
}

// StartFleet starts the hosts and returns once each has been started
// (not necessarily registered: see Env.WaitRegistered).
func StartFleet(ctx context.Context, o FleetOptions) (*Fleet, error) {
	if o.HostsPerClient <= 0 {
		o.HostsPerClient = 100
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	f := &Fleet{}
	for i := 0; i < o.Hosts; i += o.HostsPerClient {
		c, err := temporalclient.Dial(config.Temporal{Address: o.Address, Namespace: "default"}, o.Logger,
			temporalclient.Identity(fmt.Sprintf("fleet-%d", i/o.HostsPerClient)))
		if err != nil {
			f.Stop()
			return nil, err
		}
		f.clients = append(f.clients, c)
	}
	var pause time.Duration
	if o.Hosts > 1 {
		pause = o.Spread / time.Duration(o.Hosts-1)
	}
	for i := range o.Hosts {
		cfg, err := o.Config(i)
		if err != nil {
			f.Stop()
			return nil, fmt.Errorf("host %d: %w", i, err)
		}
		opts := workers.Options{
			Client: f.clients[i/o.HostsPerClient],
			Logger: o.Logger.With("host", cfg.Host),
			Registration: func(ev workers.RegistrationEvent) {
				f.count(ev)
				if o.Registration != nil {
					o.Registration(ev)
				}
			},
		}
		f.hosts = append(f.hosts, &fleetHost{cfg: cfg, run: workers.Start(context.Background(), cfg, opts)})
		if pause > 0 && i < o.Hosts-1 {
			select {
			case <-ctx.Done():
				f.Stop()
				return nil, ctx.Err()
			case <-time.After(pause):
			}
		}
	}
	return f, nil
}

func (f *Fleet) count(ev workers.RegistrationEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Renewal {
		f.stats.Renewals++
		if ev.Err == nil {
			f.stats.RenewalLatencies = append(f.stats.RenewalLatencies, ev.Took)
		}
	} else {
		f.stats.Registrations++
	}
	if ev.Err != nil {
		f.stats.Failures++
		if len(f.stats.Errors) < 10 {
			f.stats.Errors = append(f.stats.Errors, fmt.Sprintf("%s: %v", ev.ID, ev.Err))
		}
	}
}

// Stats returns a copy of the counts so far.
func (f *Fleet) Stats() RegistrationStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Errors = slices.Clone(s.Errors)
	s.RenewalLatencies = slices.Clone(s.RenewalLatencies)
	return s
}

// IDs are the fleet's host ids, in the order the hosts were started.
func (f *Fleet) IDs() []string {
	ids := make([]string, len(f.hosts))
	for i, h := range f.hosts {
		ids[i] = h.cfg.Host
	}
	return ids
}

// StopHost stops host i as SIGTERM stops an installer: it deregisters and
// its worker stops.
func (f *Fleet) StopHost(i int) error {
	return f.hosts[i].run.Stop(30 * time.Second)
}

// Stop stops every host, then closes the clients.
func (f *Fleet) Stop() {
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Go(func() { _ = h.run.Stop(30 * time.Second) })
	}
	wg.Wait()
	for _, c := range f.clients {
		c.Close()
	}
}

// FleetHost is a simulated host's installer config: host id, its own work
// dir and install root under root/hosts/<id>, and for each environment
// each named target installed with the release behavior (which can roll
// back and say what is live) into root/hosts/<id>/<env>/<target>. It
// obeys the managers trust names (ManagerTrust).
func FleetHost(address, root, id, artifacts string, targets map[string][]string, trust config.InstallerTrust) (*config.Installer, error) {
	in := &config.Installer{
		Service:      config.Service{Version: config.Version, Temporal: config.Temporal{Address: address}, Logging: config.Logging{Level: "error"}},
		Host:         id,
		Trust:        trust,
		Artifacts:    artifacts,
		WorkDir:      filepath.Join(root, "hosts", id, "work"),
		Environments: map[string]map[string]config.InstallBehavior{},
	}
	for env, ts := range targets {
		in.Environments[env] = map[string]config.InstallBehavior{}
		for _, t := range ts {
			in.Environments[env][t] = config.InstallBehavior{Behavior: config.BehaviorRelease, Path: filepath.Join(root, "hosts", id, env, t)}
		}
	}
	in.Default()
	return in, in.Validate()
}

// FleetServerArgs are the dev server arguments (devserver.Options.ExtraArgs)
// for a fleet of hosts: each host holds one long poll on its queue, and
// Temporal's frontend allows 1,200 long polls at once per namespace and
// API by default (frontend.namespaceCount), so a fleet past about a
// thousand hosts needs more, as a production cluster would.
func FleetServerArgs(hosts int) []string {
	return []string{"--dynamic-config-value", fmt.Sprintf("frontend.namespaceCount=%d", max(1200, hosts+500))}
}
