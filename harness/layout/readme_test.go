package layout

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relman/relman/harness/testenv"
)

// layoutPaths reads the paths the README's Layout lists: the backquoted
// names in the first column of its "| path | what |" table.
func layoutPaths(t *testing.T, readme string) map[string]bool {
	t.Helper()
	start := strings.Index(readme, "\n## Layout\n")
	if start < 0 {
		t.Fatal("README.md has no ## Layout section")
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	table := strings.Index(section, "| path | what |")
	if table < 0 {
		t.Fatal("README.md's Layout has no | path | what | table")
	}
	quoted := regexp.MustCompile("`([^`]+)`")
	paths := map[string]bool{}
	for _, line := range strings.Split(section[table:], "\n")[2:] {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		first := strings.SplitN(line[2:], " | ", 2)[0]
		for _, m := range quoted.FindAllStringSubmatch(first, -1) {
			paths[strings.TrimSuffix(m[1], "/")] = true
		}
	}
	return paths
}

// The Layout lists every top-level folder and every folder holding Go
// code, and lists nothing that is not there.
func TestReadmeLayoutIsComplete(t *testing.T) {
	root := testenv.RepoRoot()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := layoutPaths(t, string(readme))
	want := map[string]bool{}
	for dir := range goDirs(t, root) {
		want[dir] = true
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case !e.IsDir(), e.Name() == ".git", e.Name() == "bin", e.Name() == ".relman":
			// bin/ and .relman/ are made by make and relman dev, not kept.
		default:
			want[e.Name()] = true
		}
	}
	for dir := range want {
		if !listed[dir] {
			t.Errorf("README.md's Layout does not list %s/: add a row saying what it holds", dir)
		}
	}
	for path := range listed {
		if st, err := os.Stat(filepath.Join(root, path)); err != nil || !st.IsDir() {
			t.Errorf("README.md's Layout lists %s, which is not a folder", path)
		}
	}
}
