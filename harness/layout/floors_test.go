package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relman/relman/harness/testenv"
)

const module = "github.com/relman/relman"

// floors gives each folder its floor; a package sits on the floor of the
// longest folder that holds it. Code imports only its own floor and those
// below: the engine never imports the surfaces people use, and nothing
// imports the test harnesses but tests and the programs on top.
var floors = []struct {
	floor   int
	folders []string
}{
	// The model and the leaves: the store, archives, checkouts, secrets,
	// the auth API, configs, rollout rules, the workflows, and the clients
	// of Temporal the engine uses.
	// examples/ and deployments/ are data here: the example configs and
	// project, the unit templates and files users copy.
	{1, []string{"internal", "artifact", "auth", "config", "rollout", "workflows", "examples", "deployments"}},
	// The engine: activities and install behaviors.
	{2, []string{"activities", "behavior"}},
	// Roles wired: workers.Run.
	{3, []string{"workers"}},
	// What people use: the CLI, the manager's gateway, the dev stack.
	{4, []string{"surface"}},
	// Test harnesses.
	{5, []string{"harness"}},
	// Programs and suites on top.
	{6, []string{"cmd", "e2e", "chaos", "fleet", "bench", "examples/custom-authenticator", "examples/custom-behavior"}},
}

// floorOf returns the floor of a folder relative to the repo root, or 0
// when no floor holds it.
func floorOf(dir string) (int, string) {
	best, at := "", 0
	for _, f := range floors {
		for _, folder := range f.folders {
			if (dir == folder || strings.HasPrefix(dir, folder+"/")) && len(folder) > len(best) {
				best, at = folder, f.floor
			}
		}
	}
	return at, best
}

// goDirs lists the repo's folders holding Go files, relative to root.
func goDirs(t *testing.T, root string) map[string][]string {
	t.Helper()
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") {
			dirs[filepath.ToSlash(filepath.Dir(rel))] = append(dirs[filepath.ToSlash(filepath.Dir(rel))], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// No package imports one on a higher floor. A package's own tests may also
// import the harnesses, which is what they are for; an external test
// package (package x_test) is a program on top of x, and may import any
// floor, as Go lets it without a cycle.
func TestNothingImportsUpward(t *testing.T) {
	root := testenv.RepoRoot()
	fset := token.NewFileSet()
	for dir, files := range goDirs(t, root) {
		floor, _ := floorOf(dir)
		if floor == 0 {
			t.Errorf("%s/ sits on no floor: add it to floors in harness/layout/floors_test.go and to the README's Layout", dir)
			continue
		}
		for _, file := range files {
			f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			test := strings.HasSuffix(file, "_test.go")
			if test && strings.HasSuffix(f.Name.Name, "_test") {
				continue
			}
			for _, imp := range f.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				if !strings.HasPrefix(path, module+"/") {
					continue
				}
				to := strings.TrimPrefix(path, module+"/")
				toFloor, toFolder := floorOf(to)
				if toFloor <= floor || (test && toFolder == "harness") {
					continue
				}
				rel, _ := filepath.Rel(root, file)
				t.Errorf("%s imports %s: floor %d imports floor %d (%s/); move the shared part down or pass it in", filepath.ToSlash(rel), to, floor, toFloor, toFolder)
			}
		}
	}
}

// The floors name only folders that exist, so the table cannot go stale.
func TestFloorsNameRealFolders(t *testing.T) {
	root := testenv.RepoRoot()
	for _, f := range floors {
		for _, folder := range f.folders {
			if st, err := os.Stat(filepath.Join(root, folder)); err != nil || !st.IsDir() {
				t.Errorf("floor %d names %s/, which is not a folder", f.floor, folder)
			}
		}
	}
}
