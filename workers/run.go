package workers

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	authapi "github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/xmlrpc"
)

// Options are what a binary built from relman's packages adds to a role.
type Options struct {
	// Logger; nil writes the role's log to stderr at the config's level.
	Logger *slog.Logger
	// Identity names the process in event histories; default the role's
	// name (the builder's name, the installer's host).
	Identity string
	// Authenticators are a manager's realms registered in code. Each must
	// be listed in the config under auth.realms as an empty realm ({}).
	Authenticators *authapi.Registry
}

// Run runs a role until ctx ends, as `relman manager|builder|installer`
// does: cfg is a *config.Manager, *config.Builder or *config.Installer.
// A manager serves its XML-RPC gateway beside its worker, both with the
// same realms.
func Run(ctx context.Context, cfg any, opts Options) error {
	var svc *config.Service
	identity := opts.Identity
	switch c := cfg.(type) {
	case *config.Manager:
		svc = &c.Service
		identity = orDefault(identity, "manager")
	case *config.Builder:
		svc = &c.Service
		identity = orDefault(identity, c.Name)
	case *config.Installer:
		svc = &c.Service
		identity = orDefault(identity, c.Host)
	default:
		return fmt.Errorf("workers.Run takes a *config.Manager, *config.Builder or *config.Installer, not %T", cfg)
	}
	if opts.Authenticators != nil {
		if _, ok := cfg.(*config.Manager); !ok {
			return fmt.Errorf("authenticators are a manager's; this config is a %T", cfg)
		}
	}
	log := opts.Logger
	if log == nil {
		level, err := config.ParseLevel(svc.Logging.Level)
		if err != nil {
			return err
		}
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	c, err := temporalclient.Dial(svc.Temporal, log, temporalclient.Identity(identity))
	if err != nil {
		return err
	}
	defer c.Close()
	switch cfg := cfg.(type) {
	case *config.Manager:
		realms, err := Realms(cfg, opts.Authenticators)
		if err != nil {
			return err
		}
		gw, err := xmlrpc.ListenGateway(c, cfg, log.With("component", "xml-rpc"), realms)
		if err != nil {
			return err
		}
		defer gw.Close()
		log.Info("xml-rpc gateway listening", "url", gw.URL())
		return manager(ctx, c, cfg, log, realms)
	case *config.Builder:
		return Builder(ctx, c, cfg, log)
	case *config.Installer:
		return Installer(ctx, c, cfg, log)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
