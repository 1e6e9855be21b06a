package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// An installer built from relman's public packages with a behavior of its
// own (examples/custom-behavior) installs a release, says what is live, and
// rolls back, through the same CLI as relman's own behaviors.
func TestCustomBehaviorInstaller(t *testing.T) {
	bin := filepath.Join(env.Root, "my-installer")
	build := exec.Command("go", "build", "-o", bin, "./examples/custom-behavior")
	build.Dir = testenv.RepoRoot()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./examples/custom-behavior: %s", out)

	root := filepath.Join(env.Root, "host-custom")
	cfg := filepath.Join(env.Root, "host-custom.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
host: host-custom
artifacts: file://./artifacts
work_dir: %s/work
lease: 10s
trust: {manager_key_files: [orders.key.pub]}
environments:
  custom:
    app: {behavior: symlink-release, path: %s/app}
`, root, root)), 0o644))
	p, err := env.StartProcess("host-custom", nil, bin, "--config", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(20 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, env.WaitRegistered(ctx, "host-custom"))

	var txs []string
	for _, body := range []string{"custom v1\n", "custom v2\n"} {
		commitApp(t, body)
		stdout, stderr, code := relman(t, "release", "site", "--env", "custom", "--wait", "-o", "json")
		require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		var d workflows.Detail
		require.NoError(t, json.Unmarshal([]byte(stdout[strings.Index(stdout, "{"):]), &d))
		require.Len(t, d.Installs, 1)
		assert.Equal(t, "host-custom", d.Installs[0].Host)
		txs = append(txs, d.Transaction)
		assert.Equal(t, body, readFile(t, filepath.Join(root, "app", "current", "index.html")))
	}

	stdout, stderr, code := relman(t, "where", "site", "--env", "custom", "-o", "json")
	require.Equal(t, cli.ExitOK, code, stderr)
	var res workflows.WhereResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	live := res.Hosts["host-custom"]["app"]
	assert.Equal(t, txs[1], live.Transaction, "where asks the behavior what is live")
	assert.Equal(t, "symlink-release", live.Behavior)
	assert.Equal(t, txs, live.Releases)
	assert.Len(t, live.SHA256, 64)

	stdout, stderr, code = relman(t, "rollback", "site", "--env", "custom", "--wait")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout, string(workflows.StatusRollbackCompleted))
	assert.Equal(t, "custom v1\n", readFile(t, filepath.Join(root, "app", "current", "index.html")), "rolled back through the custom behavior")
}
