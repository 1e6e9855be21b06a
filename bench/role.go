package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workers"
)

// roleMain runs one relman role in this process until SIGTERM, exactly as
// `relman builder|installer` does (workers.Builder / workers.Installer),
// with the config handed over as JSON instead of YAML, and optionally a CPU
// profile of the process's whole life.
func roleMain(role, cfgPath, cpuProfile string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		return 1
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	log := quietLogger()
	switch role {
	case "builder":
		var cfg config.Builder
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fail(err)
		}
		cfg.Default()
		if err := cfg.Validate(); err != nil {
			return fail(err)
		}
		c, err := temporalclient.Dial(cfg.Temporal, log, temporalclient.Identity(cfg.Name))
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		if err := workers.Builder(ctx, c, &cfg, log); err != nil {
			return fail(err)
		}
	case "installer":
		var cfg config.Installer
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fail(err)
		}
		cfg.Default()
		if err := cfg.Validate(); err != nil {
			return fail(err)
		}
		c, err := temporalclient.Dial(cfg.Temporal, log, temporalclient.Identity(cfg.Host))
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		if err := workers.Installer(ctx, c, &cfg, log); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown role %q", role))
	}
	return 0
}
