package layout

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relman/relman/harness/testenv"
)

// The examples build in a module of someone else's: a manager with a
// custom authenticator and an installer with a custom behavior, their
// tests included, from relman's public packages. Go refuses an import of
// relman's internal/ from outside the module, so this fails the day an
// example, or a public type it needs, reaches into internal/.
func TestExamplesBuildOutsideTheModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two programs in a module of their own")
	}
	root := testenv.RepoRoot()
	mod := t.TempDir()
	for _, ex := range []string{"custom-authenticator", "custom-behavior"} {
		src := filepath.Join(root, "examples", ex)
		dst := filepath.Join(mod, ex)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		files, err := filepath.Glob(filepath.Join(src, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in examples/%s: %v", ex, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// relman's own requirements, so the build needs no module it has not
	// got already, then relman itself from this tree.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(gomod), "\n", 2)
	text := "module example.com/mine\n" + lines[1] +
		"\nrequire github.com/relman/relman v0.0.0\n\nreplace github.com/relman/relman => " + root + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	// vet compiles the tests too.
	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the examples do not build in a module outside relman's: %v\n%s", err, out)
	}
}
