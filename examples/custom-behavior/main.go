// Command my-installer is an installer host built from relman's packages with
// an install behavior of its own, "symlink-release" (see symlink.go). It does
// what `relman installer --config FILE` does, after registering the behavior,
// so installer configs may say `behavior: symlink-release`.
//
//	go build -o bin/my-installer ./examples/custom-behavior
//	./bin/my-installer --config examples/custom-behavior/installer.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workers"
)

// registerBehaviors adds this binary's behaviors. It must run before the
// config is loaded: validation only accepts registered behavior names
// (behavior.Register also calls config.RegisterBehaviorName).
func registerBehaviors() {
	behavior.Register(SymlinkReleaseName, behavior.Func(InstallSymlinkRelease))
}

func main() {
	configPath := flag.String("config", "", "the installer's YAML config file")
	flag.Parse()
	if *configPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: my-installer --config installer.yaml")
		os.Exit(2)
	}
	registerBehaviors()

	// SIGINT or SIGTERM ends the context: the installer deregisters, lets
	// running installs finish (up to the worker's stop timeout) and returns.
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

	logger, closeLog, err := newLogger(cfg.Logging)
	if err != nil {
		return err
	}
	defer closeLog()
	logger = logger.With("role", "installer", "host", cfg.Host)

	// The identity names this process in event histories, as relman's does.
	c, err := temporalclient.Dial(cfg.Temporal, logger, temporalclient.Identity("my-installer-"+cfg.Host))
	if err != nil {
		return err
	}
	defer c.Close()
	err = workers.Installer(ctx, c, cfg, logger)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// newLogger writes to the config's logging path, or stderr when none is set,
// at the configured level.
func newLogger(l config.Logging) (*slog.Logger, func(), error) {
	level, err := config.ParseLevel(l.Level)
	if err != nil {
		return nil, nil, err
	}
	w, closeLog := os.Stderr, func() {}
	if l.Path != "" {
		if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
			return nil, nil, fmt.Errorf("logging path: %w", err)
		}
		f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("logging path: %w", err)
		}
		w, closeLog = f, func() { f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), closeLog, nil
}
