package behavior

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/internal/buildstep"
)

// unarchive extracts the archive into a staging directory beside the
// destination and swaps it in, so the destination always holds either the
// previous install or the new one, never a mix.
func unarchive(ctx context.Context, req Request) error {
	if req.Format != "tar.gz" && req.Format != "zip" {
		return fmt.Errorf("unarchive of %s: the artifact is a single file (%s), not an archive; use the copy behavior: %w", req.Target, req.Name, ErrWrongFormat)
	}
	dest := req.Config.Path
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("install path: %w", err)
	}
	staging, held, err := newStaging(parent, filepath.Base(dest))
	if err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	defer held.Close() // after the RemoveAll below: closing drops the lock
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	if err := archive.Extract(ctx, req.Resource, staging, archive.Limits{}); err != nil {
		return fmt.Errorf("unarchive %s: %w", req.Target, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return swapIn(staging, dest)
}

// stagingPrefix names the staging dirs of dest's base name; the same
// pattern finds stale ones.
func stagingPrefix(base string) string { return "." + base + ".relman-staging-" }

// newStaging makes a fresh staging dir beside the destination and holds an
// flock on it for as long as the install runs (the returned file; closing it,
// or the process dying, releases the lock). First it removes the staging dirs
// of the same destination that nobody holds: leftovers of an installer killed
// mid-extraction, which no deferred cleanup ever removed. A staging dir
// another install is still filling is locked and left alone. The parent
// directory is flocked while cleaning and creating, so no install can see
// another's staging dir between its creation and its lock.
func newStaging(parent, base string) (string, *os.File, error) {
	pf, err := os.Open(parent)
	if err != nil {
		return "", nil, err
	}
	defer pf.Close()
	if err := unix.Flock(int(pf.Fd()), unix.LOCK_EX); err != nil {
		return "", nil, fmt.Errorf("lock %s: %w", parent, err)
	}
	removeStaleStaging(parent, base)
	staging, err := os.MkdirTemp(parent, stagingPrefix(base))
	if err != nil {
		return "", nil, err
	}
	held, err := os.Open(staging)
	if err == nil {
		err = unix.Flock(int(held.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			held.Close()
		}
	}
	if err != nil {
		_ = os.RemoveAll(staging)
		return "", nil, fmt.Errorf("lock %s: %w", staging, err)
	}
	return staging, held, nil
}

// removeStaleStaging removes the staging dirs of base in parent whose lock
// nobody holds. Errors are ignored: a leftover that cannot be removed now is
// tried again by the next install.
func removeStaleStaging(parent, base string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix(base)) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = os.RemoveAll(p)
		}
		f.Close()
	}
}

// swapIn puts the directory staging at dest. With an existing dest both are
// exchanged in one rename (Linux renameat2), and the old content, now at
// staging, is removed by the caller.
func swapIn(staging, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, os.ErrNotExist) {
		return os.Rename(staging, dest)
	}
	err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("swap in %s: %w", dest, err)
	}
	// File systems without RENAME_EXCHANGE: two renames, a moment apart.
	old := staging + ".old"
	if err := os.Rename(dest, old); err != nil {
		return fmt.Errorf("swap in %s: %w", dest, err)
	}
	if err := os.Rename(staging, dest); err != nil {
		_ = os.Rename(old, dest)
		return fmt.Errorf("swap in %s: %w", dest, err)
	}
	return os.RemoveAll(old)
}

// copyFile puts a single-file artifact at the path (or, if the path is a
// directory, under its original name inside it) by writing a temporary file
// beside it and renaming it over the old one.
func copyFile(ctx context.Context, req Request) error {
	dest := req.Config.Path
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		name := req.Name
		if name == "" {
			name = req.Target
		}
		dest = filepath.Join(dest, filepath.Base(name))
	}
	mode := os.FileMode(0o644)
	if req.Config.Mode != "" {
		m, err := strconv.ParseUint(req.Config.Mode, 8, 32)
		if err != nil {
			return fmt.Errorf("copy mode %q is not octal", req.Config.Mode)
		}
		mode = os.FileMode(m) & 0o777
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("install path: %w", err)
	}
	src, err := os.Open(req.Resource)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".relman-")
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return fmt.Errorf("copy: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("copy: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("copy: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// command runs the configured command against the resource. The command is
// from the installer's config, never from the request.
func command(ctx context.Context, req Request) error {
	if len(req.Config.Command) == 0 {
		return fmt.Errorf("command behavior of %s has no command", req.Target)
	}
	logDir := filepath.Join(req.WorkDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	// The transaction id is chosen by the requester: keep it one file name.
	r := &buildstep.Runner{LogPath: filepath.Join(logDir, logName(req.Transaction+"-"+req.Target)+".log")}
	timeout := req.Config.Timeout
	if timeout == 0 {
		timeout = config.DefaultBehaviorTimeout
	}
	dir := req.Config.Path
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = req.WorkDir
	}
	_, err := r.Run(ctx, buildstep.Step{
		Name:    "install " + req.Target,
		Argv:    req.Config.Command,
		Dir:     dir,
		Timeout: timeout,
		Env: map[string]string{
			"RELMAN_RESOURCE":    req.Resource,
			"RELMAN_TARGET":      req.Target,
			"RELMAN_ENV":         req.Env,
			"RELMAN_TRANSACTION": req.Transaction,
			"RELMAN_PROJECT":     req.Project,
			"RELMAN_PATH":        req.Config.Path,
			"RELMAN_FORMAT":      req.Format,
		},
	})
	return err
}

// logName keeps an id usable as one file name inside the log directory.
func logName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}
