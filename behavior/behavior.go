// Package behavior holds install behaviors: what an installer host does with
// a verified artifact for one named target (the seed's InstallBehavior).
// Behaviors are registered by name; an installer binary of your own can add
// one with Register before it starts the installer worker (see
// examples/custom-behavior).
package behavior

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/relman/relman/config"
)

// Request is one install of one named target on this host.
type Request struct {
	Transaction string
	Project     string
	Env         string
	Target      string
	// Resource is the local path of the downloaded artifact; its sha256 has
	// been verified before the behavior runs.
	Resource string
	// Format is "tar.gz" or "zip" for an archive, "file" for a single file.
	Format string
	// Name is the artifact's original file name for single files.
	Name string
	// Config is the named target's behavior settings (path, mode, command).
	Config config.InstallBehavior
	// WorkDir is the installer's scratch space (logs, downloads). Behaviors
	// stage beside their destination, not here, so the final rename stays on
	// one file system.
	WorkDir string
	Log     *slog.Logger
}

// Behavior installs a resource. It must leave the previous install intact
// when it fails, and be safe to run again (installs are retried).
type Behavior interface {
	Install(ctx context.Context, req Request) error
}

// Func adapts a function to Behavior.
type Func func(ctx context.Context, req Request) error

// Install calls f.
func (f Func) Install(ctx context.Context, req Request) error { return f(ctx, req) }

var (
	mu       sync.RWMutex
	registry = map[string]Behavior{}
)

// Register makes b available under name to installer configs.
func Register(name string, b Behavior) {
	mu.Lock()
	defer mu.Unlock()
	registry[name] = b
	config.RegisterBehaviorName(name)
}

// Lookup returns the behavior registered under name.
func Lookup(name string) (Behavior, error) {
	mu.RLock()
	defer mu.RUnlock()
	b, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("no install behavior named %q; known: %v", name, namesLocked())
	}
	return b, nil
}

// Names lists the registered behaviors.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func init() {
	Register("unarchive", Func(unarchive))
	Register("copy", Func(copyFile))
	Register("command", Func(command))
}
