package behavior_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUnarchiveRemovesStaleStaging: an installer killed mid-extraction
// leaves its staging dir behind; the next unarchive of the same destination
// removes it, but leaves alone a staging dir another install still holds and
// the staging dirs of other destinations.
func TestUnarchiveRemovesStaleStaging(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "site")
	writeTree(t, dest, map[string]string{"index.html": "old\n"})
	stale := filepath.Join(parent, ".site.relman-staging-111")
	writeTree(t, stale, map[string]string{"half/extracted.txt": "x\n"})
	other := filepath.Join(parent, ".blog.relman-staging-222")
	writeTree(t, other, map[string]string{"a.txt": "a\n"})
	live := filepath.Join(parent, ".site.relman-staging-333")
	writeTree(t, live, map[string]string{"b.txt": "b\n"})
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}

	files := map[string]string{"index.html": "new\n"}
	if err := unarchive(t, tarGz(t, files), "tar.gz", dest); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, dest), files)
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{".blog.relman-staging-222", ".site.relman-staging-333", "site"}
	if !slices.Equal(names, want) {
		t.Errorf("parent holds %v, want %v (the stale staging dir removed, the live and the other kept)", names, want)
	}

	// Once its holder is gone, the next install removes it too.
	f.Close()
	if err := unarchive(t, tarGz(t, files), "tar.gz", dest); err != nil {
		t.Fatal(err)
	}
	entries, err = os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{".blog.relman-staging-222", "site"}; !slices.Equal(names, want) {
		t.Errorf("parent holds %v, want %v", names, want)
	}
}
