package behavior_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
)

func releaseInstall(t *testing.T, root, tx, resource string, keep int, shared ...string) error {
	t.Helper()
	return lookup(t, config.BehaviorRelease).Install(context.Background(), behavior.Request{
		Transaction: tx, Project: "web", Env: "test", Target: "app",
		Resource: resource, Format: "tar.gz", Name: "app.tar.gz",
		Config:  config.InstallBehavior{Behavior: config.BehaviorRelease, Path: root, Keep: keep, Shared: shared},
		WorkDir: t.TempDir(), Log: quietLog,
	})
}

// txids returns n uuid v7 transaction ids, oldest first.
func txids(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		u, err := uuid.NewV7()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = u.String()
		time.Sleep(2 * time.Millisecond)
	}
	return out
}

func current(t *testing.T, root string) string {
	t.Helper()
	cur, err := behavior.CurrentRelease(root)
	if err != nil {
		t.Fatal(err)
	}
	return cur
}

func TestReleaseLayoutAndShared(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	tx := txids(t, 2)
	res := tarGz(t, map[string]string{"index.html": "v1\n", "logs/from-archive.log": "replaced\n", "public/uploads/x": "gone\n"})
	if err := releaseInstall(t, root, tx[0], res, 5, "logs", "public/uploads"); err != nil {
		t.Fatal(err)
	}
	if got := current(t, root); got != tx[0] {
		t.Fatalf("current = %q, want %q", got, tx[0])
	}
	link, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil || link != filepath.Join("releases", tx[0]) {
		t.Fatalf("current -> %q (%v), want a relative link to releases/%s", link, err, tx[0])
	}
	if got := readFile(t, filepath.Join(root, "current", "index.html")); got != "v1\n" {
		t.Errorf("current/index.html = %q", got)
	}
	// Shared dirs replace what the archive had and survive releases.
	for _, s := range []string{"logs", "public/uploads"} {
		fi, err := os.Lstat(filepath.Join(root, "releases", tx[0], s))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s in the release is not a symlink (%v)", s, err)
		}
		if fi, err := os.Stat(filepath.Join(root, "shared", s)); err != nil || !fi.IsDir() {
			t.Fatalf("shared/%s missing: %v", s, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "current", "logs", "app.log"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := releaseInstall(t, root, tx[1], tarGz(t, map[string]string{"index.html": "v2\n"}), 5, "logs", "public/uploads"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "current", "logs", "app.log")); got != "kept\n" {
		t.Errorf("shared log after the next release = %q", got)
	}
	if got := readFile(t, filepath.Join(root, "current", "index.html")); got != "v2\n" {
		t.Errorf("current/index.html = %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "shared", "logs", "from-archive.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the archive's logs/ must not reach shared/: %v", err)
	}
	// No staging dirs or temporary links are left behind.
	entries, _ := os.ReadDir(filepath.Join(root, "releases"))
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Errorf("leftover %s in releases/", e.Name())
		}
	}
	top, _ := filepath.Glob(filepath.Join(root, ".current.relman-*"))
	if len(top) > 0 {
		t.Errorf("leftover temporary links %v", top)
	}
}

func TestReleaseRetryIsIdempotent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	tx := txids(t, 1)[0]
	res := tarGz(t, map[string]string{"index.html": "v1\n"})
	for range 3 {
		if err := releaseInstall(t, root, tx, res, 5, "logs"); err != nil {
			t.Fatal(err)
		}
	}
	rels, err := behavior.Releases(root)
	if err != nil || !slices.Equal(rels, []string{tx}) {
		t.Fatalf("releases = %v (%v), want only %s", rels, err, tx)
	}
	if current(t, root) != tx {
		t.Fatal("current moved")
	}
}

func TestReleaseFailureLeavesCurrent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	tx := txids(t, 2)
	if err := releaseInstall(t, root, tx[0], tarGz(t, map[string]string{"index.html": "v1\n"}), 5); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	if err := os.WriteFile(bad, []byte("not a tar.gz"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := releaseInstall(t, root, tx[1], bad, 5); err == nil {
		t.Fatal("a broken archive installed")
	}
	if current(t, root) != tx[0] {
		t.Errorf("current = %s after a failed install, want %s", current(t, root), tx[0])
	}
	rels, _ := behavior.Releases(root)
	if !slices.Equal(rels, []string{tx[0]}) {
		t.Errorf("releases = %v, want only the first (no half release)", rels)
	}
	// A single file is the wrong format and changes nothing either.
	err := lookup(t, config.BehaviorRelease).Install(context.Background(), behavior.Request{
		Transaction: tx[1], Target: "app", Resource: bad, Format: "file", Name: "x",
		Config: config.InstallBehavior{Behavior: config.BehaviorRelease, Path: root}, WorkDir: t.TempDir(), Log: quietLog,
	})
	if !errors.Is(err, behavior.ErrWrongFormat) {
		t.Errorf("single file: err = %v, want ErrWrongFormat", err)
	}
}

func TestReleaseKeepNeverPrunesCurrentOrPrevious(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	tx := txids(t, 6)
	for i, id := range tx[:4] {
		if err := releaseInstall(t, root, id, tarGz(t, map[string]string{"v": string(rune('1' + i))}), 3); err != nil {
			t.Fatal(err)
		}
	}
	rels, _ := behavior.Releases(root)
	if !slices.Equal(rels, tx[1:4]) {
		t.Fatalf("releases = %v, want the newest three %v", rels, tx[1:4])
	}
	// Roll back twice: current is the oldest kept release. A new install
	// with keep 1 keeps it (it is the one before the new current) and the
	// new one, and prunes the rest.
	if _, _, err := behavior.RollbackRelease(root, ""); err != nil {
		t.Fatal(err)
	}
	from, to, err := behavior.RollbackRelease(root, "")
	if err != nil || from != tx[2] || to != tx[1] {
		t.Fatalf("second rollback %s -> %s (%v), want %s -> %s", from, to, err, tx[2], tx[1])
	}
	removed, err := behavior.PruneReleases(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	rels, _ = behavior.Releases(root)
	if !slices.Contains(rels, tx[1]) {
		t.Fatalf("prune removed current %s: kept %v, removed %v", tx[1], rels, removed)
	}
	// Current is the oldest: nothing before it to protect; newer ones go.
	if len(rels) != 1 {
		t.Errorf("keep 1 left %v", rels)
	}
	if err := releaseInstall(t, root, tx[4], tarGz(t, map[string]string{"v": "5"}), 1); err != nil {
		t.Fatal(err)
	}
	if err := releaseInstall(t, root, tx[5], tarGz(t, map[string]string{"v": "6"}), 1); err != nil {
		t.Fatal(err)
	}
	rels, _ = behavior.Releases(root)
	if !slices.Equal(rels, []string{tx[4], tx[5]}) {
		t.Errorf("keep 1 after two installs = %v, want current and previous %v", rels, tx[4:])
	}
}

func TestReleaseRollback(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	tx := txids(t, 3)
	for i, id := range tx {
		if err := releaseInstall(t, root, id, tarGz(t, map[string]string{"index.html": string(rune('1' + i))}), 5); err != nil {
			t.Fatal(err)
		}
	}
	from, to, err := behavior.RollbackRelease(root, "")
	if err != nil || from != tx[2] || to != tx[1] {
		t.Fatalf("rollback %s -> %s (%v)", from, to, err)
	}
	if got := readFile(t, filepath.Join(root, "current", "index.html")); got != "2" {
		t.Errorf("after rollback index.html = %q, want 2", got)
	}
	if _, _, err := behavior.RollbackRelease(root, tx[0]); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "current", "index.html")); got != "1" {
		t.Errorf("after rollback --to index.html = %q, want 1", got)
	}
	if _, _, err := behavior.RollbackRelease(root, ""); !errors.Is(err, behavior.ErrReleaseNotFound) {
		t.Errorf("rollback from the oldest: err = %v, want ErrReleaseNotFound", err)
	}
	if _, _, err := behavior.RollbackRelease(root, "no-such-tx"); !errors.Is(err, behavior.ErrReleaseNotFound) {
		t.Errorf("rollback to a missing release: err = %v, want ErrReleaseNotFound", err)
	}
	if current(t, root) != tx[0] {
		t.Errorf("a failed rollback moved current")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
