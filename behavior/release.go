package behavior

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
)

// The release behavior lays a target out as Capistrano does:
//
//	<path>/releases/<transaction>/   one directory per install
//	<path>/shared/<name>/            kept across releases, linked into each
//	<path>/current -> releases/<transaction>
//
// An install extracts into a staging dir inside releases/, links the shared
// dirs in, renames it into place, then switches current atomically (a new
// symlink renamed over the old one). Old releases are pruned down to Keep,
// never the current one nor the one before it, so a rollback is one symlink
// switch away.

const (
	releasesDir = "releases"
	sharedDir   = "shared"
	currentLink = "current"
)

// Release is the release behavior (behavior: release). Besides installing
// it can roll back (Rollbacker) and report what is live (LiveReporter).
type Release struct{}

// Install installs a release and switches current to it.
func (Release) Install(ctx context.Context, req Request) error { return installRelease(ctx, req) }

// Rollback switches current back to the release of req.To, or to the one
// before the current one.
func (Release) Rollback(_ context.Context, req RollbackRequest) (from, to string, err error) {
	return RollbackRelease(req.Config.Path, req.To)
}

// Live reports the release current points at, and the releases kept.
func (Release) Live(cfg config.InstallBehavior) (Live, error) {
	cur, err := CurrentRelease(cfg.Path)
	if err != nil {
		return Live{}, err
	}
	kept, err := Releases(cfg.Path)
	if err != nil {
		return Live{}, err
	}
	l := Live{Transaction: cur, Releases: kept}
	if cur != "" {
		l.Path = filepath.Join(cfg.Path, releasesDir, cur)
	}
	return l, nil
}

// ReleaseName is the directory name under releases/ of a transaction: the
// id itself, kept to one visible path component.
func ReleaseName(txid string) string {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '\\' {
			return '_'
		}
		return r
	}, txid)
	if name == "" || strings.HasPrefix(name, ".") {
		name = "_" + name
	}
	return name
}

// ReleaseDir is where the release of txid lives under the target's path.
func ReleaseDir(path, txid string) string {
	return filepath.Join(path, releasesDir, ReleaseName(txid))
}

func installRelease(ctx context.Context, req Request) error {
	if req.Format != "tar.gz" && req.Format != "zip" {
		return fmt.Errorf("release of %s: the artifact is a single file (%s), not an archive; use the copy behavior: %w", req.Target, req.Name, ErrWrongFormat)
	}
	root := req.Config.Path
	if root == "" {
		return fmt.Errorf("release of %s: no path configured", req.Target)
	}
	releases := filepath.Join(root, releasesDir)
	if err := os.MkdirAll(releases, 0o755); err != nil {
		return fmt.Errorf("install path: %w", err)
	}
	name := ReleaseName(req.Transaction)
	dest := filepath.Join(releases, name)
	if fi, err := os.Lstat(dest); err == nil && fi.IsDir() {
		// A retry of an install whose release is in place already: only the
		// links and the switch may be missing.
		if err := linkShared(root, dest, req.Config.Shared); err != nil {
			return err
		}
	} else {
		if err := stageRelease(ctx, req, root, releases, name); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := lockTarget(root)
	if err != nil {
		return err
	}
	defer unlock()
	if err := SwitchCurrent(root, name); err != nil {
		return err
	}
	keep := req.Config.Keep
	if keep <= 0 {
		keep = config.DefaultKeep
	}
	removed, err := PruneReleases(root, keep)
	if err != nil && req.Log != nil {
		// The install itself succeeded; what is left is tried next time.
		req.Log.Warn("pruning old releases", "path", root, "error", err)
	}
	if len(removed) > 0 && req.Log != nil {
		req.Log.Info("pruned old releases", "path", root, "removed", removed)
	}
	return nil
}

// stageRelease extracts the archive into a staging dir inside releases/,
// links the shared dirs in and renames it to its final name.
func stageRelease(ctx context.Context, req Request, root, releases, name string) error {
	staging, held, err := newStaging(releases, name)
	if err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	defer held.Close()
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	if err := archive.Extract(ctx, req.Resource, staging, archive.Limits{}); err != nil {
		return fmt.Errorf("release %s: %w", req.Target, err)
	}
	if err := linkShared(root, staging, req.Config.Shared); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dest := filepath.Join(releases, name)
	if err := os.Rename(staging, dest); err != nil {
		// Another install of the same transaction got there first.
		if fi, serr := os.Lstat(dest); serr == nil && fi.IsDir() {
			return nil
		}
		return fmt.Errorf("release %s: %w", req.Target, err)
	}
	return nil
}

// linkShared makes <root>/shared/<name> for each name and links it into the
// release as <release>/<name>, replacing what the artifact had there.
func linkShared(root, release string, names []string) error {
	for _, n := range names {
		if !config.ValidSharedName(n) {
			return fmt.Errorf("shared %q is not a relative path inside the release", n)
		}
		target := filepath.Join(root, sharedDir, filepath.FromSlash(n))
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("shared dir: %w", err)
		}
		link := filepath.Join(release, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("shared link: %w", err)
		}
		rel, err := filepath.Rel(filepath.Dir(link), target)
		if err != nil {
			return fmt.Errorf("shared link: %w", err)
		}
		if got, err := os.Readlink(link); err == nil && got == rel {
			continue
		}
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("shared link: %w", err)
		}
		if err := os.Symlink(rel, link); err != nil {
			return fmt.Errorf("shared link: %w", err)
		}
	}
	return nil
}

// SwitchCurrent points <root>/current at releases/<name> in one rename, so
// every reader sees either the old release or the new one.
func SwitchCurrent(root, name string) error {
	dest := filepath.Join(root, releasesDir, name)
	fi, err := os.Stat(dest)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("release %s is not in %s: %w", name, filepath.Join(root, releasesDir), ErrReleaseNotFound)
	}
	cur := filepath.Join(root, currentLink)
	if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a symlink; move it away so relman can manage it", cur)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(root, ".current.relman-"+hex.EncodeToString(b[:]))
	if err := os.Symlink(filepath.Join(releasesDir, name), tmp); err != nil {
		return fmt.Errorf("switch current: %w", err)
	}
	if err := os.Rename(tmp, cur); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("switch current: %w", err)
	}
	// The rename is durable once the directory is synced.
	if d, err := os.Open(root); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// CurrentRelease names the release <root>/current points at, or "" when
// there is no current link.
func CurrentRelease(root string) (string, error) {
	t, err := os.Readlink(filepath.Join(root, currentLink))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current: %w", err)
	}
	return filepath.Base(t), nil
}

// Releases lists the releases under <root>/releases, oldest first: by the
// time in the name for uuid v7 transaction ids (they sort by time), else by
// the directory's modification time, then by name.
func Releases(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, releasesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type rel struct {
		name string
		at   time.Time
	}
	var rs []rel
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r := rel{name: e.Name()}
		if u, err := uuid.Parse(e.Name()); err == nil && u.Version() == 7 {
			sec, nsec := u.Time().UnixTime()
			r.at = time.Unix(sec, nsec)
		} else if fi, err := e.Info(); err == nil {
			r.at = fi.ModTime()
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b rel) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
	}
	return out, nil
}

// PruneReleases removes the oldest releases until keep are left, never the
// current one nor the one before it. It returns the names removed.
func PruneReleases(root string, keep int) ([]string, error) {
	all, err := Releases(root)
	if err != nil {
		return nil, err
	}
	cur, err := CurrentRelease(root)
	if err != nil {
		return nil, err
	}
	protected := map[string]bool{cur: cur != ""}
	if i := slices.Index(all, cur); i > 0 {
		protected[all[i-1]] = true
	}
	var removed []string
	var errs []error
	excess := len(all) - keep
	for _, n := range all {
		if excess <= 0 {
			break
		}
		if protected[n] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, releasesDir, n)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, n)
		excess--
	}
	return removed, errors.Join(errs...)
}

// RollbackRelease switches current back: to the release of transaction to,
// or with to empty to the release before the current one. It returns the
// release names current pointed at before and after.
func RollbackRelease(root, to string) (from, now string, err error) {
	unlock, err := lockTarget(root)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	from, err = CurrentRelease(root)
	if err != nil {
		return "", "", err
	}
	all, err := Releases(root)
	if err != nil {
		return from, "", err
	}
	if to != "" {
		now = ReleaseName(to)
		if !slices.Contains(all, now) {
			return from, "", fmt.Errorf("release %s is not in %s (kept: %s): %w", to, filepath.Join(root, releasesDir), listOr(all), ErrReleaseNotFound)
		}
	} else {
		if from == "" {
			return "", "", fmt.Errorf("%s has no current release to roll back from: %w", root, ErrReleaseNotFound)
		}
		i := slices.Index(all, from)
		if i <= 0 {
			return from, "", fmt.Errorf("no release before %s in %s to roll back to: %w", from, filepath.Join(root, releasesDir), ErrReleaseNotFound)
		}
		now = all[i-1]
	}
	if err := SwitchCurrent(root, now); err != nil {
		return from, "", err
	}
	return from, now, nil
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// lockTarget serialises the switch and prune of one target's releases
// between installs and rollbacks running at once on this host.
func lockTarget(root string) (func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(root, ".relman.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	return func() { f.Close() }, nil
}
