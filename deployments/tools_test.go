package deployments_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
)

// tool finds an external program: the repository's bin/ first (make puts
// the pinned helm there), then PATH. Outside CI a missing tool skips the
// test; in CI (CI set) it fails it, so a check never silently stops running.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", "bin", name)); err == nil {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not in bin/ or on PATH; %s", name, install)
	}
	t.Skipf("%s is not in bin/ or on PATH (%s)", name, install)
	return ""
}

// loadRelmanConfig writes data to a file named name in a temp dir and loads
// it with relman's own strict loader, so a config a deployment ships is one
// relman accepts. It returns the loaded *config.Manager, *config.Builder or
// *config.Installer.
func loadRelmanConfig(t *testing.T, name string, data []byte) any {
	t.Helper()
	p := filepath.Join(t.TempDir(), filepath.Base(name))
	require.NoError(t, os.WriteFile(p, data, 0o644))
	c, err := config.Load(p)
	require.NoError(t, err, "%s is not a config relman accepts", name)
	return c
}

// roleOf names the role of a loaded config.
func roleOf(c any) string {
	switch c.(type) {
	case *config.Manager:
		return "manager"
	case *config.Builder:
		return "builder"
	case *config.Installer:
		return "installer"
	}
	return ""
}
