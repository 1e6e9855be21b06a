// Command my-installer is an installer host built from relman's public
// packages with an install behavior of its own, "symlink-release" (see
// symlink.go). It does what `relman installer --config FILE` does, with its
// behavior added to relman's, so installer configs may say
// `behavior: symlink-release`; the behavior can also roll back and say what
// is live, so `relman rollback` and `relman where` work on its targets.
//
//	go build -o bin/my-installer ./examples/custom-behavior
//	./bin/my-installer --config examples/custom-behavior/installer.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workers"
)

func main() {
	configPath := flag.String("config", "", "the installer's YAML config file")
	flag.Parse()
	if *configPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: my-installer --config installer.yaml")
		os.Exit(2)
	}
	// SIGINT or SIGTERM ends the context: the installer deregisters, lets
	// running installs finish and returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath); err != nil {
		fmt.Fprintln(os.Stderr, "my-installer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string) error {
	cfg, err := config.LoadInstaller(path)
	if err != nil {
		return err
	}
	// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API key variables win
	// over the file, as for relman itself.
	cfg.Temporal.ApplyEnv(os.LookupEnv)

	// relman's behaviors plus this binary's: a registry is a value handed
	// to the installer, so nothing has to happen before the config loads.
	behaviors := behavior.Builtin()
	behaviors.Register(SymlinkReleaseName, SymlinkRelease{})
	return workers.Run(ctx, cfg, workers.Options{Behaviors: behaviors})
}
