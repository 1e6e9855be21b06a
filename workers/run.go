// Package workers runs relman's roles: Run is the one place a manager, a
// builder or an installer host is wired. It sets up the role's log and
// telemetry, connects to Temporal (waiting for it when it is away), serves
// the manager's XML-RPC gateway, creates the workers on the role's task
// queues and registers on them what register.go lists, keeps a builder's or
// host's registration alive, answers /livez and /readyz, and stops
// gracefully when the context ends (SIGTERM, SIGINT): deregister first, so
// no new work is planned here, then let running activities finish.
//
// `relman manager|builder|installer`, `relman dev`, the tests' harness, the
// benchmarks and installers built with behaviors of their own
// (examples/custom-behavior) all call Run.
package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/retry"
	"github.com/relman/relman/internal/telemetry"
	"github.com/relman/relman/internal/temporalclient"
)

// stopTimeout is how long a stopping worker lets running activities finish
// before it hands them back to Temporal for another worker.
const stopTimeout = config.DefaultStopTimeout

// telemetryFlushTimeout bounds the flush of traces and metrics at a stop.
const telemetryFlushTimeout = config.DefaultTelemetryFlushTimeout

// Options adjust how Run runs a role. The zero value runs it as
// `relman manager|builder|installer --config F` does.
type Options struct {
	// Logger receives the role's log; nil: a text log at the config's
	// logging level, to its logging path or else to Stderr.
	Logger *slog.Logger
	// Stderr is where a role without a logging path logs; nil: os.Stderr.
	Stderr io.Writer
	// Client is used instead of connecting to the config's Temporal, for
	// roles sharing one connection in one process (tests, simulated
	// hosts). Run does not close it.
	Client client.Client
	// ClientOptions adjusts the options of the client Run connects with.
	ClientOptions func(*client.Options)
	// LookupEnv reads the OTEL_* variables for telemetry; nil: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Behaviors are an installer's install behaviors; nil: relman's own
	// (behavior.Builtin). Add yours to behavior.Builtin() and pass it here.
	Behaviors *behavior.Registry
	// Authenticators are a manager's realms registered in code; each must
	// be listed in the config under auth.realms as an empty realm ({}).
	Authenticators *auth.Registry
	// Gateway serves a manager's XML-RPC gateway (surface/xmlrpc.Serve in
	// relman's binary). workers/ sits below the surfaces people use, so a
	// binary built from relman's packages passes it in; a manager whose
	// config leaves the gateway on refuses to start without one.
	Gateway Gateway
	// GatewayAddress overrides where a manager's XML-RPC gateway listens
	// (host:port; port 0 for any free one).
	GatewayAddress string
	// Ready is called once, when the role serves: its workers poll their
	// queues and, for builders and hosts, the registration holds.
	Ready func(Serving)
	// StatusURL is called with the URL of /livez and /readyz as soon as
	// they are served (status_address set), before Temporal is reached.
	StatusURL func(string)
	// Registration, when set, is called after each registration and
	// renewal of a builder or host, with how long it took and how it
	// ended (the fleet harness and benchmarks count them).
	Registration func(RegistrationEvent)
}

// Serving says what a role serves once it is ready.
type Serving struct {
	Role, ID string
	// GatewayURL is the manager's XML-RPC gateway; empty when it has none.
	GatewayURL string
	// StatusURL answers /livez and /readyz; empty without status_address.
	StatusURL string
}

// Run runs the role cfg configures (a *config.Manager, *config.Builder or
// *config.Installer, loaded and defaulted) until ctx ends, then stops it
// gracefully. It returns nil on a stop asked for through ctx.
func Run(ctx context.Context, cfg config.File, opts Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	svc := cfg.Base()
	r := &role{name: cfg.Role(), id: roleID(cfg), opts: opts}
	if r.opts.Stderr == nil {
		r.opts.Stderr = os.Stderr
	}
	if r.opts.LookupEnv == nil {
		r.opts.LookupEnv = os.LookupEnv
	}
	log := opts.Logger
	if log == nil {
		l, closeLog, err := NewLogger(svc.Logging, r.opts.Stderr)
		if err != nil {
			return err
		}
		defer closeLog()
		log = l
	}
	r.log = log.With("role", r.name)
	if _, ok := cfg.(*config.Manager); !ok && opts.Authenticators != nil {
		return fmt.Errorf("authenticators are a manager's; this config is a %s's", cfg.Role())
	}
	if m, ok := cfg.(*config.Manager); ok && !m.Gateway.Off && opts.Gateway == nil {
		return errNoGateway
	}
	if in, ok := cfg.(*config.Installer); ok {
		if r.opts.Behaviors == nil {
			r.opts.Behaviors = behavior.Builtin()
		}
		if err := r.opts.Behaviors.Check(in); err != nil {
			return err
		}
	}

	stopStatus, err := r.serveStatus(svc.StatusAddress)
	if err != nil {
		return err
	}
	defer stopStatus()

	c := opts.Client
	if c == nil {
		tel, err := telemetry.Setup(ctx, "relman-"+r.name, r.opts.LookupEnv, r.opts.Stderr)
		if err != nil {
			return err
		}
		defer func() {
			// Spans for a collector that does not answer are lost either
			// way; the stop does not wait for them.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlushTimeout)
			defer cancel()
			_ = tel.Shutdown(sctx)
		}()
		with := []func(*client.Options){tel.Apply}
		if opts.ClientOptions != nil {
			with = append(with, opts.ClientOptions)
		}
		c, err = r.connect(ctx, svc.Temporal, temporalclient.Identity(r.id), with...)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting for Temporal
			}
			return err
		}
		defer c.Close()
	}
	r.client = c

	switch cfg := cfg.(type) {
	case *config.Manager:
		return r.manager(ctx, cfg)
	case *config.Builder:
		return r.builder(ctx, cfg)
	case *config.Installer:
		return r.installer(ctx, cfg)
	}
	return fmt.Errorf("no role for a config of type %T", cfg)
}

// role is one running role.
type role struct {
	name, id string
	opts     Options
	log      *slog.Logger
	client   client.Client
	status   status
}

// connect dials Temporal, and while it is away warns and tries again with
// a growing pause (the seed: a worker "will not fail to start" when its
// manager is unavailable). Settings that cannot work (a missing TLS file)
// fail at once.
func (r *role) connect(ctx context.Context, t config.Temporal, identity string, with ...func(*client.Options)) (client.Client, error) {
	o, err := temporalclient.Options(t, r.log, identity, with...)
	if err != nil {
		return nil, err
	}
	c, err := retry.Do(ctx, reconnect, nil, func() (client.Client, error) { return client.DialContext(ctx, o) },
		func(err error, wait time.Duration) {
			msg := fmt.Sprintf("Temporal at %s (namespace %s) is unreachable; retrying in %s", o.HostPort, o.Namespace, wait.Round(time.Millisecond))
			r.status.notReady(msg)
			r.log.Warn(msg, "error", err)
		})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return c, err
}

// reconnect is how a role waits while Temporal or its store is away.
var reconnect = retry.Policy{First: config.DefaultReconnectInterval, Max: config.DefaultReconnectMax}

// openStore opens a builder's or host's artifact store and watches it
// (watchStore) while the role runs.
func (r *role) openStore(ctx context.Context, url string) (artifact.Store, error) {
	go r.watchStore(ctx, url)
	store, err := artifact.OpenStore(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	return store, nil
}

// watchStore checks a builder's or host's artifact store as the role
// starts, and while the store is down or refuses it warns and checks again
// with a growing pause until it answers (a refusal needs the store's
// settings or rights fixed, which may happen meanwhile). The role serves all
// the same, so a release that reaches it fails with the store's own error,
// naming the store and the bucket; /readyz says the store is not usable.
func (r *role) watchStore(ctx context.Context, url string) {
	broken := false
	_, err := retry.Do(ctx, reconnect, nil, func() (struct{}, error) { return struct{}{}, artifact.Check(ctx, url) },
		func(err error, wait time.Duration) {
			broken = true
			msg := fmt.Sprintf("artifact store not usable; checking again in %s", wait.Round(time.Millisecond))
			if errors.Is(err, artifact.ErrRefused) {
				msg = fmt.Sprintf("artifact store refuses this role (fix its settings or rights); checking again in %s", wait.Round(time.Millisecond))
			}
			r.status.storeBroken(err.Error())
			r.log.Warn(msg, "error", err)
		})
	if err == nil && broken {
		r.log.Info("artifact store usable again")
		r.status.storeOK()
	}
}

// ready marks the role ready and tells Options.Ready once.
func (r *role) ready(s Serving) {
	s.Role, s.ID, s.StatusURL = r.name, r.id, r.status.url
	if r.status.setReady() && r.opts.Ready != nil {
		r.opts.Ready(s)
	}
}

// warn logs a warning about the role's own files (a secret others can
// read).
func (r *role) warn(msg string) { r.log.Warn(msg) }

// NewLogger writes a role's structured log to its logging path (the seed's
// logging_path and logging_level), or to stderr when none is set. With a
// logging path and stderr a terminal (a role started by a person), warnings
// and errors also go to stderr: "Temporal is unreachable; retrying" must
// not sit only in a file.
func NewLogger(l config.Logging, stderr io.Writer) (*slog.Logger, func(), error) {
	level, err := config.ParseLevel(l.Level)
	if err != nil {
		return nil, nil, err
	}
	w, closer := stderr, func() {}
	if l.Path != "" {
		if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
			return nil, nil, fmt.Errorf("logging path: %w", err)
		}
		// Not for others' eyes: a log names users, hosts and errors.
		f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("logging path: %w", err)
		}
		w, closer = f, func() { f.Close() }
	}
	var h slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	if l.Path != "" && IsTerminal(stderr) {
		h = slog.NewMultiHandler(h, slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: max(level, slog.LevelWarn)}))
	}
	return slog.New(h), closer, nil
}

// IsTerminal reports whether w is a terminal: a writer that says so itself
// (IsTerminal() bool, as tests' writers do), or a file on a terminal.
func IsTerminal(w io.Writer) bool {
	switch w := w.(type) {
	case interface{ IsTerminal() bool }:
		return w.IsTerminal()
	case *os.File:
		return isatty.IsTerminal(w.Fd())
	}
	return false
}

// roleID names a role instance: in its client identity, its registration
// and its log.
func roleID(c config.File) string {
	switch c := c.(type) {
	case *config.Builder:
		return c.Name
	case *config.Installer:
		return c.Host
	}
	return "manager"
}
