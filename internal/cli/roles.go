package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/telemetry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/xmlrpc"
	"github.com/relman/relman/workers"
)

var roleShort = map[string]string{
	"manager":   "Run a manager: the Release and Registry workflows and the manager's checks, on the manager queue",
	"builder":   "Run a builder: builds the projects its config lists, on relman-build-<project>",
	"installer": "Run an installer host: installs its named targets, on relman-host-<host>",
}

func (a *app) roleCommand(role string) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:     role + " --config FILE",
		Short:   roleShort[role],
		Example: fmt.Sprintf("  relman %s --config examples/%s.yaml", role, role),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageErr("relman %s needs --config FILE (see examples/%s.yaml)", role, role)
			}
			return a.runRole(cmd.Context(), role, path)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "the role's YAML config file")
	return cmd
}

// runRole loads a role's config and serves until the context ends (the CLI's
// context ends on SIGINT or SIGTERM).
func (a *app) runRole(ctx context.Context, role, path string) error {
	var svc *config.Service
	var cfg any
	var err error
	switch role {
	case "manager":
		var c *config.Manager
		c, err = config.LoadManager(path)
		if c != nil {
			svc, cfg = &c.Service, c
		}
	case "builder":
		var c *config.Builder
		c, err = config.LoadBuilder(path)
		if c != nil {
			svc, cfg = &c.Service, c
		}
	case "installer":
		var c *config.Installer
		c, err = config.LoadInstaller(path)
		if c != nil {
			svc, cfg = &c.Service, c
		}
	}
	if err != nil {
		return err
	}
	svc.Temporal = a.temporalSettings(svc.Temporal)
	if a.logLevel != "" {
		svc.Logging.Level = a.logLevel
	}
	log, closeLog, err := newLogger(svc.Logging, a.opts.Stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	log = log.With("role", role)
	tel, err := telemetry.Setup(ctx, "relman-"+role, a.opts.LookupEnv, a.opts.Stderr)
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.WithoutCancel(ctx))
	c, err := temporalclient.Dial(svc.Temporal, log, temporalclient.Identity(roleID(cfg)), tel.Apply)
	if err != nil {
		return err
	}
	defer c.Close()
	switch cfg := cfg.(type) {
	case *config.Manager:
		// The XML-RPC gateway for the seed's clients serves beside the
		// manager worker; a port that cannot be opened stops the role.
		gw, err := xmlrpc.ListenGateway(c, cfg, log.With("component", "xml-rpc"), nil)
		if err != nil {
			return err
		}
		defer gw.Close()
		log.Info("xml-rpc gateway listening", "url", gw.URL())
		return workers.Manager(ctx, c, cfg, log)
	case *config.Builder:
		return workers.Builder(ctx, c, cfg, log)
	case *config.Installer:
		return workers.Installer(ctx, c, cfg, log)
	}
	return nil
}

// newLogger writes a role's structured log to its logging path (the seed's
// logging_path and logging_level), or to stderr when none is set.
func newLogger(l config.Logging, stderr io.Writer) (*slog.Logger, func(), error) {
	level, err := config.ParseLevel(l.Level)
	if err != nil {
		return nil, nil, err
	}
	w, closer := stderr, func() {}
	if l.Path != "" {
		if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
			return nil, nil, fmt.Errorf("logging path: %w", err)
		}
		f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("logging path: %w", err)
		}
		w, closer = f, func() { f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), closer, nil
}

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with relman config files"}
	cmd.AddCommand(&cobra.Command{
		Use:     "check FILE...",
		Short:   "Check config files: strict YAML, version, every problem reported at once",
		Example: `  relman config check examples/manager.yaml examples/builder.yaml examples/installer-a.yaml`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, p := range args {
				c, err := config.Load(p)
				if err != nil {
					bad++
					fmt.Fprintln(a.opts.Stderr, err)
					continue
				}
				fmt.Fprintf(a.opts.Stdout, "%s: ok (%s)\n", p, roleOf(c))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d config files have problems", bad, len(args))
			}
			return nil
		},
	})
	return cmd
}

// roleID names a role instance for its client identity.
func roleID(c any) string {
	switch c := c.(type) {
	case *config.Builder:
		return c.Name
	case *config.Installer:
		return c.Host
	}
	return "manager"
}

func roleOf(c any) string {
	switch c.(type) {
	case *config.Manager:
		return "manager"
	case *config.Builder:
		return "builder"
	case *config.Installer:
		return "installer"
	}
	return "unknown"
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print relman's version",
		Example: "  relman version",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if a.output == "json" {
				return a.printJSON(map[string]string{"version": Version})
			}
			fmt.Fprintln(a.opts.Stdout, "relman", Version)
			return nil
		},
	}
}
