// Command my-manager is a relman manager built from relman's public
// packages with one more realm, "htpasswd" (see htpasswd.go): users from
// Apache htpasswd and htgroup files, and a change freeze that refuses
// installs. It does what `relman manager --config FILE` does, with the
// authenticator registered, so clients may send
// {'username', 'password', 'realm': 'htpasswd'}.
//
//	go build -o bin/my-manager ./examples/custom-authenticator
//	./bin/my-manager --config examples/custom-authenticator/manager.yaml \
//	    --htpasswd conf/relman.htpasswd --htgroup conf/relman.htgroup --freeze-file conf/FREEZE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workers"
)

func main() {
	configPath := flag.String("config", "", "the manager's YAML config file")
	h := &Htpasswd{}
	flag.StringVar(&h.PasswordFile, "htpasswd", "", "the htpasswd file (bcrypt: htpasswd -B)")
	flag.StringVar(&h.GroupFile, "htgroup", "", "the htgroup file: group names are relman roles")
	flag.StringVar(&h.FreezeFile, "freeze-file", "", "while this file exists, installs are refused")
	flag.Parse()
	if *configPath == "" || h.PasswordFile == "" || h.GroupFile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: my-manager --config manager.yaml --htpasswd FILE --htgroup FILE [--freeze-file FILE]")
		os.Exit(2)
	}
	// SIGINT or SIGTERM ends the context: the manager stops its worker
	// and gateway and returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath, h); err != nil {
		fmt.Fprintln(os.Stderr, "my-manager:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, h *Htpasswd) error {
	cfg, err := config.LoadManager(path)
	if err != nil {
		return err
	}
	cfg.Temporal.ApplyEnv(os.LookupEnv)
	// The config lists the realm as `htpasswd: {}`; this binary supplies
	// its authenticator.
	var realms auth.Registry
	if err := realms.Register("htpasswd", h); err != nil {
		return err
	}
	err = workers.Run(ctx, cfg, workers.Options{Authenticators: &realms, Gateway: xmlrpc.Serve})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
