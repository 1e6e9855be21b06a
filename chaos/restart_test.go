package chaos

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/workflows"
)

// TestTemporalRestartMidRelease: the Temporal server (SQLite file) is
// stopped during a build and started again on the same port and file; the
// release completes, the registry kept its registrations, and the role
// processes reconnected by themselves.
func TestTemporalRestartMidRelease(t *testing.T) {
	ctx := timeout(t, 4*time.Minute)
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "logs"), 0o755))
	srvLog := filepath.Join(root, "logs", "temporal.log")
	srv, err := devserver.Start(ctx, devserver.Options{Bin: temporal, DBFile: filepath.Join(root, "temporal.db"), LogPath: srvLog, LogLevel: "error"})
	require.NoError(t, err)
	e, err := testenv.New(root, env.Relman, srv.Address)
	require.NoError(t, err)
	// Cleanups run last-registered first: roles stop before the server.
	t.Cleanup(func() { _ = srv.Stop(20 * time.Second) })
	t.Cleanup(e.Close)
	e.AddLog(srvLog)
	e.DumpOnFailure(t)

	_, err = testenv.InitRepo(filepath.Join(root, "repo"), map[string]string{"slow.sh": repoFiles["slow.sh"]})
	require.NoError(t, err)
	port, err := testenv.FreePort()
	require.NoError(t, err)
	mcfg, err := e.WriteConfig("manager.yaml", &config.Manager{
		Service: e.Service(), ListenPort: port,
		Environments: map[string]config.Environment{"test": {}},
		Projects:     map[string]config.ProjectDef{"slow": {Targets: []string{"slowout"}}},
		Timeouts:     chaosTimeouts,
		Auth:         config.Auth{Anonymous: true},
	})
	require.NoError(t, err)
	whoFile := filepath.Join(root, "who.log")
	bcfg, err := e.WriteConfig("builder.yaml", &config.Builder{
		Service: e.Service(), Name: "rs-builder",
		Artifacts: "file://" + filepath.Join(root, "artifacts"), WorkDir: filepath.Join(root, "builder"),
		Lease: 30 * time.Second,
		Projects: map[string]config.BuildBehavior{"slow": {
			Source:  config.Source{Git: filepath.Join(root, "repo")},
			Env:     map[string]string{"RELMAN_WHO": "rs-builder", "RELMAN_WHOFILE": whoFile, "RELMAN_SLEEP": "8"},
			Steps:   []config.Step{{Name: "slow", Run: []string{"sh", "slow.sh"}}},
			Outputs: map[string]config.Output{"slowout": {Path: "out/slow"}},
		}},
	})
	require.NoError(t, err)
	installed := filepath.Join(root, "rs-host", "slow.txt")
	icfg, err := e.WriteConfig("installer.yaml", &config.Installer{
		Service: e.Service(), Host: "rs-host", Trust: e.Trust(),
		Artifacts: "file://" + filepath.Join(root, "artifacts"), WorkDir: filepath.Join(root, "rs-host", "work"),
		Lease:        30 * time.Second,
		Environments: map[string]map[string]config.InstallBehavior{"test": {"slowout": copyTo(installed)}},
	})
	require.NoError(t, err)
	var roles []*testenv.Proc
	for _, r := range [][3]string{{"rs-manager", "manager", mcfg}, {"rs-builder", "builder", bcfg}, {"rs-host", "installer", icfg}} {
		p, err := e.StartRole(r[0], r[1], r[2])
		require.NoError(t, err)
		roles = append(roles, p)
	}
	require.NoError(t, e.WaitRegistered(ctx, "rs-builder", "rs-host"))

	txid := release(t, e, install("slow"))
	waitWho(t, whoFile, txid, 1)
	stopped := time.Now()
	require.NoError(t, srv.Stop(30*time.Second))
	t.Logf("temporal stopped in %s during the build", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(2500 * time.Millisecond)
	restart := time.Now()
	require.NoError(t, srv.Start(ctx))
	t.Logf("temporal serving again on %s after %s", srv.Address, time.Since(restart).Round(time.Millisecond))

	d, err := e.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	assert.Equal(t, d.Commit+"\n", readFile(t, installed))
	t.Logf("release completed %s after the restart; build attempts: %d", time.Since(restart).Round(time.Millisecond), len(whoLines(t, whoFile, txid)))

	// The registry survived: the same registrations, registered before the
	// stop (a renewal keeps the first registration time).
	ls, err := e.Registry().List(ctx, time.Now())
	require.NoError(t, err)
	regs := map[string]workflows.Lease{}
	for _, l := range ls {
		regs[l.ID] = l
	}
	for _, id := range []string{"rs-builder", "rs-host"} {
		l, ok := regs[id]
		require.True(t, ok, "%s still registered: %v", id, ls)
		assert.True(t, l.Registered.Before(stopped), "%s registered at %s, before the stop at %s", id, l.Registered, stopped)
	}
	out, _, code := e.CLI(ctx, "registrations")
	require.Zero(t, code)
	assert.Contains(t, out, "rs-builder")
	assert.Contains(t, out, "rs-host")
	// No role process was restarted.
	for _, p := range roles {
		assert.True(t, p.Running(), "%s (pid %d) still runs", p.Name, p.Pid())
	}
}
