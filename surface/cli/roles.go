package cli

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workers"
)

var roleShort = map[string]string{
	"manager":   "Run a manager: the Release and Registry workflows and the manager's checks, on the manager queue",
	"builder":   "Run a builder: builds the projects its config lists for every manager it serves, on relman-build-<project>",
	"installer": "Run an installer host: installs its named targets for every manager it serves, on relman-host-<host>",
}

func (a *app) roleCommand(role string) *cobra.Command {
	var path, id, cpuProfile string
	cmd := &cobra.Command{
		Use:     role + " --config FILE",
		Short:   roleShort[role],
		Example: fmt.Sprintf("  relman %s --config examples/%s.yaml", role, role),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageErr("relman %s needs --config FILE (see examples/%s.yaml)", role, role)
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			return a.runRole(cmd.Context(), role, path, id)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "the role's YAML config file")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the role to this file until it stops (go tool pprof)")
	switch role {
	case "builder":
		cmd.Flags().StringVar(&id, "name", "", "the builder's name, instead of the config's (for one config shared by many builders)")
		cmd.Example += "\n  relman builder --config /etc/relman/builder.yaml --name build-7"
	case "installer":
		cmd.Flags().StringVar(&id, "host", "", "the host id, instead of the config's (for one config shared by many hosts, such as a DaemonSet's node name)")
		cmd.Example += "\n  relman installer --config /etc/relman/installer.yaml --host \"$(hostname)\""
	}
	return cmd
}

// runRole loads a role's config, applies the command line's settings, and
// serves until the context ends (the CLI's context ends on SIGINT or
// SIGTERM).
func (a *app) runRole(ctx context.Context, role, path, id string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.Role() != role {
		return usageErr("%s is a %s config, not a %s config", path, cfg.Role(), role)
	}
	switch c := cfg.(type) {
	case *config.Builder:
		if id != "" {
			c.Name = id
		}
	case *config.Installer:
		if id != "" {
			c.Host = id
		}
	}
	svc := cfg.Base()
	svc.Temporal = a.temporalSettings(svc.Temporal)
	if a.logLevel != "" {
		svc.Logging.Level = a.logLevel
	}
	return workers.Run(ctx, cfg, workers.Options{Stderr: a.opts.Stderr, LookupEnv: a.opts.LookupEnv, Gateway: xmlrpc.Serve})
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
				if in, ok := c.(*config.Installer); ok && err == nil {
					// relman's own behaviors; an installer built with
					// behaviors of its own checks its config as it starts.
					err = behavior.Builtin().Check(in)
				}
				if err != nil {
					bad++
					fmt.Fprintln(a.opts.Stderr, err)
					continue
				}
				fmt.Fprintf(a.opts.Stdout, "%s: ok (%s)\n", p, c.Role())
				if m, ok := c.(*config.Manager); ok {
					for _, line := range m.Implied() {
						fmt.Fprintf(a.opts.Stdout, "  %s\n", line)
					}
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d config files have problems", bad, len(args))
			}
			return nil
		},
	})
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print relman's version, the commit it was built from, and its Go and Temporal SDK versions",
		Example: "  relman version\n  relman version --output json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := buildVersions()
			if a.output == "json" {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.opts.Stdout, "relman %s (commit %s, %s, Temporal Go SDK %s)\n", v.Version, v.Commit, v.Go, v.SDK)
			return nil
		},
	}
}

// startCPUProfile profiles the process into path until the returned stop.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// versions is what relman version prints.
type versions struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
	SDK     string `json:"temporal_sdk"`
}

// buildVersions says the commit: the one make stamped (Commit), else the
// binary's build information (go build stamps it in a git checkout unless
// -buildvcs=false; a commit with uncommitted changes is marked "+dirty").
func buildVersions() versions {
	v := versions{Version: Version, Commit: "unknown", Go: runtime.Version(), SDK: "v" + temporal.SDKVersion}
	if Commit != "" {
		v.Commit = Commit
		return v
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && v.Commit != "unknown" {
		v.Commit += "+dirty"
	}
	return v
}
