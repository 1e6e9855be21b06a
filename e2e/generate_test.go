package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/devserver"
)

// TestGeneratedLayoutsRelease: a manager, a builder and an installer made
// by `relman generate` in one directory, started as generated, release the
// example project to INSTALL_COMPLETED. The only edits are the ones the
// manager's README names: a token, and listen_port (this machine's 10000
// may be taken). They run against a Temporal of their own, as the
// generated configs name the default manager: a bare `temporal server
// start-dev`, without relman's search attributes, which the manager's
// error and the READMEs name `relman namespace prepare` for.
func TestGeneratedLayoutsRelease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	port, err := freeTCPPort()
	require.NoError(t, err)
	srv, err := devserver.Start(ctx, devserver.Options{Bin: env.Temporal, Port: port, LogPath: env.Path("logs", "generated-temporal.log"), LogLevel: "error", Bare: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(20 * time.Second) })
	env.AddLog(env.Path("logs", "generated-temporal.log"))

	dir := t.TempDir()
	names := map[string]string{"manager": "gen-manager", "builder": "gen-builder", "installer": "gen-installer"}
	// run runs the relman binary in dir as a user would, against the
	// layouts' Temporal.
	run := func(dir string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, env.Relman, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+srv.Address)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("relman %s: %w: %s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String(), err
	}
	for _, role := range []string{"manager", "builder", "installer"} {
		_, err := run(dir, "generate", role, names[role], "--dir", dir)
		require.NoError(t, err)
	}
	mgr := filepath.Join(dir, names["manager"])

	// Signed orders from the start: the installer trusts exactly the key
	// the generated manager signs with, as relman manager-key prints it.
	managerKey, err := run(mgr, "manager-key", "--config", "conf/manager.yaml")
	require.NoError(t, err)
	inst, err := config.LoadInstaller(filepath.Join(dir, names["installer"], "conf", "installer.yaml"))
	require.NoError(t, err, "the generated installer config validates")
	assert.Equal(t, []string{strings.TrimSpace(managerKey)}, inst.Trust.ManagerKeys)

	// The README's steps: a token, and listen_port when 10000 is taken.
	readme := readFile(t, filepath.Join(mgr, "README.md"))
	const tokenStep = "relman token create deployer --users-file conf/users.yaml --roles deployer > conf/deployer.token"
	require.Contains(t, readme, tokenStep)
	require.Contains(t, readme, "set listen_port in\n   conf/manager.yaml to a free one")
	token, err := run(mgr, "token", "create", "deployer", "--users-file", "conf/users.yaml", "--roles", "deployer")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mgr, "conf", "deployer.token"), []byte(token), 0o600))
	gatewayPort, err := freeTCPPort()
	require.NoError(t, err)
	cfg := filepath.Join(mgr, "conf", "manager.yaml")
	body := readFile(t, cfg)
	require.Contains(t, body, "listen_port: 10000")
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(body, "listen_port: 10000", fmt.Sprintf("listen_port: %d", gatewayPort), 1)), 0o644))

	// On the bare server the manager refuses, naming the command; the
	// command, run twice, prepares the namespace once.
	for _, role := range []string{"manager", "builder", "installer"} {
		require.Contains(t, readFile(t, filepath.Join(dir, names[role], "README.md")), "relman namespace prepare", role)
	}
	refuse, cancelRefuse := context.WithTimeout(ctx, time.Minute)
	cmd := exec.CommandContext(refuse, env.Relman, "manager", "--config", cfg)
	cmd.Dir = mgr
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+srv.Address)
	refused, err := cmd.CombinedOutput()
	cancelRefuse()
	require.Error(t, err, "the manager starts on a namespace without relman's search attributes")
	assert.Contains(t, string(refused), "lacks relman's search attributes")
	assert.Contains(t, string(refused), "relman namespace prepare")
	out, err := run(mgr, "namespace", "prepare")
	require.NoError(t, err)
	assert.Contains(t, out, "added search attributes RelmanProject, RelmanEnv, RelmanStatus, RelmanRequester, RelmanManager")
	out, err = run(mgr, "namespace", "prepare")
	require.NoError(t, err)
	assert.Contains(t, out, "namespace default is ready: it has relman's search attributes")

	// Each role started as its README says, from its own directory.
	for _, role := range []string{"manager", "builder", "installer"} {
		require.Contains(t, readFile(t, filepath.Join(dir, names[role], "README.md")), "relman "+role+" --config conf/"+role+".yaml")
		p, err := env.StartProcess(names[role], []string{"TEMPORAL_ADDRESS=" + srv.Address},
			env.Relman, role, "--config", filepath.Join(dir, names[role], "conf", role+".yaml"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Stop(20 * time.Second) })
	}
	require.Eventually(t, func() bool {
		out, err := run(mgr, "registrations")
		return err == nil && strings.Contains(out, names["builder"]) && strings.Contains(out, names["installer"])
	}, 2*time.Minute, 300*time.Millisecond, "the generated builder and installer register")

	out, err = run(mgr, "release", "template", "--env", "test", "--wait", "--token-file", "conf/deployer.token")
	require.NoError(t, err)
	assert.Contains(t, out, "INSTALL_COMPLETED")
	installed := filepath.Join(dir, names["installer"], "install_base", "test", "template")
	assert.Contains(t, readFile(t, filepath.Join(installed, "index.html")), "<")
	assert.Contains(t, readFile(t, filepath.Join(installed, "BUILD_INFO")), "built from")
	entries, err := os.ReadDir(filepath.Join(dir, "artifacts"))
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the builder wrote the shared store")
}
