package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relman/relman/config"
)

// Running is a role started by Start in this process: the one supervisor
// of roles run side by side (relman dev, the fleet harness, the
// benchmarks), each exactly as `relman <role>` runs it.
type Running struct {
	// Name says which role it is in messages: its config's role and id.
	Name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start runs the role of cfg with opts (workers.Run) in a goroutine until
// ctx ends or Stop is called.
func Start(ctx context.Context, cfg config.File, opts Options) *Running {
	ctx, cancel := context.WithCancel(ctx)
	name := cfg.Role()
	if id := roleID(cfg); id != name {
		name += " " + id
	}
	r := &Running{Name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		err := Run(ctx, cfg, opts)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		r.err = err
	}()
	return r
}

// Done is closed when the role has stopped, on its own or by Stop.
func (r *Running) Done() <-chan struct{} { return r.done }

// Err is why the role stopped on its own (nil once stopped by Stop or its
// context); call it after Done is closed.
func (r *Running) Err() error {
	<-r.done
	return r.err
}

// Stop stops the role as SIGTERM stops a role process (it deregisters,
// its workers stop) and waits up to wait for it; it returns the role's
// error, or one saying it did not stop in time.
func (r *Running) Stop(wait time.Duration) error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(wait):
		return fmt.Errorf("%s did not stop within %s", r.Name, wait)
	}
}
