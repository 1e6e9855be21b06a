package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/workflows"
)

// miniStack starts a manager, a builder and one installer host of their
// own (queue relman-NAME, registry relman-NAME-registry) beside the shared
// stack, for tests that need a differently configured manager. common goes
// into every config; manager into the manager's. The host installs target
// web of project shop into ./host/<env>/www for each of envs. It returns
// the stack's directory and queue. cliArgs go to the CLI that reads the
// registry (an encryption key file, say).
func miniStack(t *testing.T, name, common, manager string, envs []string, cliArgs ...string) (dir, queue string) {
	t.Helper()
	queue, reg := "relman-"+name, "relman-"+name+"-registry"
	dir = filepath.Join(env.Root, name)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	common = fmt.Sprintf("version: 1\nmanager_queue: %s\nregistry_id: %s\n", queue, reg) + common
	hostEnvs := ""
	for _, e := range envs {
		hostEnvs += fmt.Sprintf("  %[1]s: {web: {behavior: unarchive, path: ./host/%[1]s/www}}\n", e)
	}
	files := map[string]string{
		"manager.yaml": common + manager,
		"builder.yaml": common + fmt.Sprintf(`name: builder-%s
artifacts: file://../artifacts
# Builders sharing a store share the key of its build records.
signing_key_file: ../build-signing.key
work_dir: ./builder
lease: 10s
projects:
  shop:
    source: {git: ../repos/shop}
    steps: [{name: build, run: [sh, build.sh]}]
    outputs: {web: {path: out/web}}
`, name),
		"host.yaml": common + fmt.Sprintf(`host: host-%s
artifacts: file://../artifacts
work_dir: ./host/work
lease: 10s
trust: {manager_key_files: [orders.key.pub]}
environments:
`, name) + hostEnvs,
	}
	var procs []*testenv.Proc
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.Stop(20 * time.Second)
		}
	})
	for file, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(body), 0o644))
	}
	for file, role := range map[string]string{"manager": "manager", "builder": "builder", "host": "installer"} {
		p, err := env.StartRole(name+"-"+file, role, filepath.Join(dir, file+".yaml"))
		require.NoError(t, err)
		procs = append(procs, p)
	}
	require.Eventually(t, func() bool {
		out, _, code := relman(t, append([]string{"registrations", "--registry-id", reg, "-o", "json"}, cliArgs...)...)
		var ls []workflows.Lease
		return code == 0 && json.Unmarshal([]byte(out), &ls) == nil && len(ls) == 2
	}, 60*time.Second, 200*time.Millisecond, "the %s stack did not register", name)
	return dir, queue
}
