// Package behavior holds install behaviors: what an installer host does with
// a verified artifact for one named target (the seed's InstallBehavior).
//
// A Registry maps the names installer configs use to behaviors; an installer
// is handed one (workers.Options.Behaviors), so an installer binary of your
// own adds behaviors to a registry of its own, with no global state (see
// examples/custom-behavior). Beyond installing, a behavior may have optional
// abilities, found by interface: one that keeps earlier installs and can put
// one back (Rollbacker) serves `relman rollback`, auto-rollback and the undo
// of a failed health check; one that knows which install is live
// (LiveReporter) serves `relman where` and tells health checks where to run.
package behavior

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
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

// Extract unpacks the request's archive (tar.gz or zip) into dir with
// relman's safe extractor: entries that would leave dir (absolute paths,
// "..", escaping links), device files and archive bombs are refused, and
// setuid bits dropped.
func (req Request) Extract(ctx context.Context, dir string) error {
	if req.Format != "tar.gz" && req.Format != "zip" {
		return fmt.Errorf("%s: the artifact is a single file (%s), not an archive: %w", req.Target, req.Name, ErrWrongFormat)
	}
	return archive.Extract(ctx, req.Resource, dir, archive.Limits{})
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

// Rollbacker is a behavior that keeps earlier installs, named by their
// transactions, and can make one live again.
type Rollbacker interface {
	// Rollback makes the install of transaction req.To live again, or the
	// one before the live one when req.To is empty, and returns the
	// transactions live before and after. A release that is not kept is
	// an error wrapping ErrReleaseNotFound.
	Rollback(ctx context.Context, req RollbackRequest) (from, to string, err error)
}

// RollbackRequest asks a Rollbacker to switch one named target back.
type RollbackRequest struct {
	Env    string
	Target string
	// To is the transaction to go back to; empty: the one before the live
	// one.
	To     string
	Config config.InstallBehavior
	Log    *slog.Logger
}

// LiveReporter is a behavior that knows which install of a target is live.
type LiveReporter interface {
	Live(cfg config.InstallBehavior) (Live, error)
}

// Live is what a LiveReporter reports of one named target.
type Live struct {
	// Transaction whose install is live; empty when none is.
	Transaction string
	// Path is the live install's directory (health checks run there).
	Path string
	// Releases are the installs kept, oldest first.
	Releases []string
}

// ErrWrongFormat says the artifact cannot be installed by the behavior, such
// as a single file given to unarchive. Retrying cannot fix it.
var ErrWrongFormat = errors.New("artifact format does not fit the behavior")

// ErrReleaseNotFound is wrapped when a rollback asks for a release the host
// does not have (never installed, or pruned).
var ErrReleaseNotFound = errors.New("release not on this host")

// Registry maps behavior names, as installer configs spell them, to
// behaviors. The zero value is empty; Builtin holds relman's own.
type Registry struct {
	byName map[string]Behavior
}

// Builtin returns a new registry holding relman's behaviors: unarchive,
// copy, command and release. Add your own to it with Register.
func Builtin() *Registry {
	r := &Registry{}
	r.Register(config.BehaviorUnarchive, Func(unarchive))
	r.Register(config.BehaviorCopy, Func(copyFile))
	r.Register(config.BehaviorCommand, Func(command))
	r.Register(config.BehaviorRelease, Release{})
	return r
}

// Register makes b available under name; a second behavior of one name
// replaces the first, so a binary may swap a builtin for its own.
func (r *Registry) Register(name string, b Behavior) {
	if r.byName == nil {
		r.byName = map[string]Behavior{}
	}
	r.byName[name] = b
}

// Lookup returns the behavior registered under name.
func (r *Registry) Lookup(name string) (Behavior, error) {
	b, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("no install behavior named %q; this installer knows %s", name, strings.Join(r.Names(), ", "))
	}
	return b, nil
}

// Names lists the registered behaviors, sorted.
func (r *Registry) Names() []string { return slices.Sorted(maps.Keys(r.byName)) }

// Check reports every named target of an installer config whose behavior
// this registry does not know, as a *config.Error, or nil.
func (r *Registry) Check(c *config.Installer) error {
	var probs []config.Problem
	for _, env := range slices.Sorted(maps.Keys(c.Environments)) {
		targets := c.Environments[env]
		for _, t := range slices.Sorted(maps.Keys(targets)) {
			name := targets[t].Behavior
			if _, ok := r.byName[name]; ok || name == "" {
				continue
			}
			probs = append(probs, config.Problem{
				Field: "environments." + env + "." + t + ".behavior",
				Msg:   fmt.Sprintf("%q is unknown; this installer knows %s (an installer built with behaviors of its own knows more)", name, strings.Join(r.Names(), ", ")),
			})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	file := c.Path()
	if file == "" {
		file = "installer config"
	}
	return &config.Error{File: file, Problems: probs}
}
