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
	"github.com/relman/relman/workers"
)

// roleMain runs one relman role in this process until SIGTERM, exactly as
// `relman builder|installer` does (workers.Run), with the config handed
// over as JSON instead of YAML, and optionally a CPU profile of the
// process's whole life.
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
	var cfg config.File
	switch role {
	case "builder":
		cfg = &config.Builder{}
	case "installer":
		cfg = &config.Installer{}
	case "manager":
		cfg = &config.Manager{}
	default:
		return fail(fmt.Errorf("unknown role %q", role))
	}
	if err := json.Unmarshal(data, cfg); err != nil {
		return fail(err)
	}
	cfg.Default()
	if err := workers.Run(ctx, cfg, workers.Options{Logger: quietLogger()}); err != nil {
		return fail(err)
	}
	return 0
}
