package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
)

// SymlinkReleaseName is the name installer configs use for the behavior:
//
//	behavior: symlink-release
const SymlinkReleaseName = "symlink-release"

// SymlinkRelease installs an archive the Capistrano way: every release gets
// its own directory, <path>/releases/<transaction>, and <path>/current is a
// symlink that is switched to the new release in one rename. Readers of
// <path>/current see the old release or the new one, never a mix, and the
// old releases stay on disk, so it can roll back (behavior.Rollbacker) and
// say what is live (behavior.LiveReporter): relman rollback, relman where,
// auto-rollback and the undo of a failed health check all work on it.
type SymlinkRelease struct{}

// Install installs a release and switches current to it. Like every
// behavior it leaves the previous install intact when it fails and is safe
// to run again: installs are retried.
func (SymlinkRelease) Install(ctx context.Context, req behavior.Request) error {
	if req.Format != "tar.gz" && req.Format != "zip" {
		return fmt.Errorf("%s of %s: the artifact is a single file (%s), not an archive: %w",
			SymlinkReleaseName, req.Target, req.Name, behavior.ErrWrongFormat)
	}
	base := req.Config.Path
	if base == "" || !filepath.IsAbs(base) {
		return fmt.Errorf("%s of %s: path %q must be absolute", SymlinkReleaseName, req.Target, base)
	}
	name, err := releaseName(req.Transaction)
	if err != nil {
		return err
	}
	current := filepath.Join(base, "current")
	// A real directory at current (say, from an earlier unarchive install)
	// cannot be replaced atomically by a symlink: say so before any work.
	if fi, err := os.Lstat(current); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s of %s: %s exists and is not a symlink; move it away once", SymlinkReleaseName, req.Target, current)
	}
	releases := filepath.Join(base, "releases")
	if err := os.MkdirAll(releases, 0o755); err != nil {
		return fmt.Errorf("%s: %w", SymlinkReleaseName, err)
	}

	release := filepath.Join(releases, name)
	if _, err := os.Lstat(release); errors.Is(err, fs.ErrNotExist) {
		if err := extractRelease(ctx, req, releases, name); err != nil {
			return fmt.Errorf("%s of %s: %w", SymlinkReleaseName, req.Target, err)
		}
	} else if err != nil {
		return fmt.Errorf("%s: %w", SymlinkReleaseName, err)
	}
	// else: a retry after the release was complete. A release directory only
	// ever appears whole (it is renamed into place), and one transaction
	// always installs the same artifact, so it is reused.

	if err := ctx.Err(); err != nil {
		return err
	}
	// Relative, so the whole tree can be moved or mounted elsewhere.
	if err := pointSymlink(filepath.Join("releases", name), current); err != nil {
		return fmt.Errorf("%s of %s: %w", SymlinkReleaseName, req.Target, err)
	}
	if req.Log != nil {
		req.Log.Info("release switched", "current", current, "release", release)
	}
	return nil
}

// extractRelease extracts into a staging directory beside the release and
// renames it into place, so releases/<name> is either absent or complete.
func extractRelease(ctx context.Context, req behavior.Request, releases, name string) error {
	staging, err := os.MkdirTemp(releases, "."+name+".staging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	// relman's safe extractor refuses entries that would leave the directory.
	if err := req.Extract(ctx, staging); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Rename(staging, filepath.Join(releases, name))
}

// pointSymlink makes link point at target atomically: a new symlink under a
// temporary name, renamed over the old one (rename(2) replaces a symlink in
// one step; removing and recreating it would leave a moment without one).
func pointSymlink(target, link string) error {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	// Make the switch durable: sync the directory holding the link.
	d, err := os.Open(filepath.Dir(link))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// releaseName turns a transaction id into one safe path component.
func releaseName(tx string) (string, error) {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, tx)
	if strings.Trim(name, ".") == "" {
		return "", fmt.Errorf("%s: transaction id %q cannot name a release directory", SymlinkReleaseName, tx)
	}
	if strings.HasPrefix(name, ".") {
		// Hidden names are the staging dirs'.
		name = "_" + name
	}
	return name, nil
}

// Rollback points current at the release of req.To, or at the release
// before the current one (in the order the releases were made).
func (SymlinkRelease) Rollback(_ context.Context, req behavior.RollbackRequest) (from, to string, err error) {
	live, err := SymlinkRelease{}.Live(req.Config)
	if err != nil {
		return "", "", err
	}
	from = live.Transaction
	if req.To != "" {
		if to, err = releaseName(req.To); err != nil {
			return from, "", err
		}
		if !slices.Contains(live.Releases, to) {
			return from, "", fmt.Errorf("release %s is not kept under %s: %w", req.To, req.Config.Path, behavior.ErrReleaseNotFound)
		}
	} else {
		i := slices.Index(live.Releases, from)
		if i <= 0 {
			return from, "", fmt.Errorf("no release before %q under %s: %w", from, req.Config.Path, behavior.ErrReleaseNotFound)
		}
		to = live.Releases[i-1]
	}
	if err := pointSymlink(filepath.Join("releases", to), filepath.Join(req.Config.Path, "current")); err != nil {
		return from, "", err
	}
	return from, to, nil
}

// Live reports the release current points at, and the releases kept,
// oldest first. The layout (releases/ and current) is the one of relman's
// own release behavior, so its public readers, behavior.CurrentRelease and
// behavior.Releases, read it.
func (SymlinkRelease) Live(cfg config.InstallBehavior) (behavior.Live, error) {
	var live behavior.Live
	cur, err := behavior.CurrentRelease(cfg.Path)
	if err != nil {
		return live, err
	}
	if cur != "" {
		live.Transaction = cur
		live.Path = filepath.Join(cfg.Path, "releases", cur)
	}
	live.Releases, err = behavior.Releases(cfg.Path)
	return live, err
}
