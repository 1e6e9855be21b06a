package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// releaseSite commits body as app/index.html, releases project site to
// test with the CLI and returns the transaction id.
func releaseSite(t *testing.T, body string) string {
	t.Helper()
	commitApp(t, body)
	out, errOut, code := relman(t, "release", "site", "--env", "test", "--wait", "-o", "json")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &d))
	require.Equal(t, workflows.StatusInstallCompleted, d.Status)
	return d.Transaction
}

func siteCurrent(t *testing.T, host string) (release, index string) {
	t.Helper()
	root := filepath.Join(env.hosts[host], "app")
	link, err := os.Readlink(filepath.Join(root, "current"))
	require.NoError(t, err)
	return filepath.Base(link), readFile(t, filepath.Join(root, "current", "index.html"))
}

func where(t *testing.T) workflows.WhereResult {
	t.Helper()
	out, errOut, code := relman(t, "where", "site", "--env", "test", "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var res workflows.WhereResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	return res
}

func TestRolloutWhereAndRollback(t *testing.T) {
	var txs []string
	for i, body := range []string{"site v1\n", "site v2\n", "site v3\n"} {
		txs = append(txs, releaseSite(t, body))
		for _, h := range []string{"host-a", "host-b"} {
			rel, index := siteCurrent(t, h)
			assert.Equal(t, txs[i], rel, "current on %s after release %d", h, i+1)
			assert.Equal(t, body, index)
		}
	}
	for _, h := range []string{"host-a", "host-b"} {
		root := filepath.Join(env.hosts[h], "app")
		link, err := os.Readlink(filepath.Join(root, "current", "logs"))
		require.NoError(t, err, "logs is linked into the release on %s", h)
		assert.Equal(t, filepath.Join("..", "..", "shared", "logs"), link)
		entries, err := os.ReadDir(filepath.Join(root, "releases"))
		require.NoError(t, err)
		assert.Len(t, entries, 3, "keep 3 on %s", h)
	}

	// where: the last release is live on both hosts.
	res := where(t)
	assert.Empty(t, res.Errors)
	require.Contains(t, res.Hosts, "host-a")
	require.Contains(t, res.Hosts, "host-b")
	for _, h := range []string{"host-a", "host-b"} {
		li := res.Hosts[h]["app"]
		assert.Equal(t, txs[2], li.Transaction, "where on %s", h)
		assert.False(t, li.InstalledAt.IsZero())
		assert.Len(t, li.SHA256, 64)
		assert.Equal(t, txs, li.Releases)
	}
	out, errOut, code := relman(t, "where", "site", "--env", "test")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, "HOST")
	assert.Contains(t, out, "INSTALLED-AT")
	assert.Contains(t, out, "host-b")
	assert.Contains(t, out, txs[2])

	// rollback: both hosts back on the second release.
	out, errOut, code = relman(t, "rollback", "site", "--env", "test", "--wait")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	rbTx := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
	assert.Contains(t, out, rbTx+" ROLLBACK_COMPLETED")
	for _, h := range []string{"host-a", "host-b"} {
		rel, index := siteCurrent(t, h)
		assert.Equal(t, txs[1], rel, "current on %s after rollback", h)
		assert.Equal(t, "site v2\n", index)
	}
	res = where(t)
	for _, h := range []string{"host-a", "host-b"} {
		assert.Equal(t, txs[1], res.Hosts[h]["app"].Transaction, "where on %s after rollback", h)
	}

	// status, history and list know the rollback transaction.
	out, _, code = relman(t, "status", rbTx)
	require.Equal(t, cli.ExitOK, code)
	assert.Equal(t, "ROLLBACK_COMPLETED\n", out)
	out, _, code = relman(t, "status", rbTx, "-o", "json")
	require.Equal(t, cli.ExitOK, code)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, workflows.ActionRollback, d.Request.Action)
	assert.Equal(t, "e2e-tester", d.Request.Requester)
	assert.Len(t, d.Installs, 2)
	out, _, code = relman(t, "history", rbTx)
	require.Equal(t, cli.ExitOK, code)
	for _, want := range []string{"status STARTED", workflows.RollbackActivity, "relman-host-host-a", "status ROLLBACK_COMPLETED"} {
		assert.Contains(t, out, want)
	}
	require.Eventually(t, func() bool {
		out, _, code = relman(t, "list", "--project", "site", "--status", "ROLLBACK_COMPLETED", "-o", "json")
		return code == 0 && strings.Contains(out, rbTx)
	}, 30*time.Second, 300*time.Millisecond)
	var rows []transaction.Listed
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	for _, r := range rows {
		if r.Transaction == rbTx {
			assert.Equal(t, "test", r.Env)
			assert.Equal(t, "e2e-tester", r.Requester)
		}
	}
	out, _, code = relman(t, "list", "--project", "site", "--limit", "50")
	require.Equal(t, cli.ExitOK, code)
	assert.Contains(t, out, txs[2], "releases are still listed beside rollbacks")

	// rollback --to the first release.
	out, errOut, code = relman(t, "rollback", "site", "--env", "test", "--to", txs[0], "--wait")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	for _, h := range []string{"host-a", "host-b"} {
		rel, index := siteCurrent(t, h)
		assert.Equal(t, txs[0], rel, "current on %s after rollback --to", h)
		assert.Equal(t, "site v1\n", index)
	}

	// Nothing before the first release: the rollback fails on every host
	// and says why; current stays.
	out, errOut, code = relman(t, "rollback", "site", "--env", "test", "--wait")
	assert.Equal(t, cli.ExitReleaseFailed, code, out)
	assert.Contains(t, errOut, "ROLLBACK_FAILED")
	assert.Contains(t, errOut, "no release before")
	for _, h := range []string{"host-a", "host-b"} {
		rel, _ := siteCurrent(t, h)
		assert.Equal(t, txs[0], rel)
	}

	// The first rollback's history (baselined: one version marker, its
	// recorder started by the manager) replays, and is saved with
	// RELMAN_UPDATE_HISTORIES=1.
	recorded(t, rbTx)
	saveHistory(t, "rollback-baseline-recorded", history(t, rbTx))

	// Past Temporal's retention the first rollback still answers, from its
	// closed-transaction record: on the CLI and on the seed's XML-RPC.
	forget(t, rbTx)
	out, errOut, code = relman(t, "status", rbTx)
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, "ROLLBACK_COMPLETED\n", out)
	assert.Contains(t, errOut, "closed-transaction record")
	waitGateway(t)
	st, fault, msg := xmlrpcCall(t, env.gatewayURL, `relman.query_transaction('`+rbTx+`')`)
	require.Zero(t, fault, msg)
	assert.Equal(t, "ROLLBACK_COMPLETED", st)
	h, fault, msg := xmlrpcCall(t, env.gatewayURL, `relman.query_history('`+rbTx+`')`)
	require.Zero(t, fault, msg)
	assert.Contains(t, fmt.Sprint(h), "ROLLBACK_COMPLETED")
}

func TestRollbackNeedsReleaseBehavior(t *testing.T) {
	out, errOut, code := relman(t, "rollback", "shop", "--env", "test", "--wait")
	assert.Equal(t, cli.ExitReleaseFailed, code, out)
	assert.Contains(t, errOut, "ROLLBACK_FAILED")
	assert.Contains(t, errOut, "rollback needs the release behavior")

	_, errOut, code = relman(t, "rollback", "nosuch", "--env", "test", "--wait")
	assert.Equal(t, cli.ExitReleaseFailed, code)
	assert.Contains(t, errOut, "REJECTED")
	assert.Contains(t, errOut, `unknown project "nosuch"`)

	_, errOut, code = relman(t, "where", "site", "--env", "nowhere")
	assert.Equal(t, cli.ExitError, code)
	assert.Contains(t, errOut, `unknown environment "nowhere"`)
}

func TestBuildOnceAcrossReleases(t *testing.T) {
	head := commitApp(t, "built once\n")
	build := func(args ...string) workflows.Detail {
		t.Helper()
		out, errOut, code := relman(t, append([]string{"release", "site", "--action", "build", "--wait", "-o", "json"}, args...)...)
		require.Equal(t, cli.ExitOK, code, errOut)
		var d workflows.Detail
		require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &d))
		require.Equal(t, head, d.Commit)
		return d
	}
	reused := func() int {
		b, _ := os.ReadFile(filepath.Join(env.Root, "logs", "builder.log"))
		return strings.Count(string(b), "reusing earlier build")
	}
	first := build()
	before := reused()
	second := build()
	assert.Equal(t, first.Artifacts, second.Artifacts, "the same artifacts")
	require.Eventually(t, func() bool { return reused() == before+1 }, 10*time.Second, 100*time.Millisecond, "the second build of one commit reuses the first")
	third := build("--rebuild")
	assert.Equal(t, first.Artifacts["app"].SHA256, third.Artifacts["app"].SHA256, "a rebuild makes the same bytes")
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, before+1, reused(), "--rebuild does not reuse")
}

// commitApp commits body as app/index.html in the shop repository, the
// source of project site.
func commitApp(t *testing.T, body string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(env.repo, "app"), 0o755))
	return commit(t, "", map[string]string{"app/index.html": body})
}

// A rolling release whose second host fails its health check stops there
// and, with auto_rollback, switches the first host back: every host ends on
// the release it had before.
func TestAutoRollbackPutsBackDoneHosts(t *testing.T) {
	commitApp(t, "autoroll v1\n")
	first := start(t, workflows.Request{Project: "site", Action: workflows.ActionInstall, Env: "autoroll"})
	d, err := final(t, first)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status)

	commit(t, "", map[string]string{"app/index.html": "autoroll v2\n", "app/BAD": "x\n"})
	defer commit(t, "", map[string]string{"app/BAD": ""})
	second := start(t, workflows.Request{Project: "site", Action: workflows.ActionInstall, Env: "autoroll"})
	d, err = final(t, second)
	require.Error(t, err)
	assert.Equal(t, workflows.StatusInstallFailed, d.Status)
	assert.Contains(t, d.Reason, "rollout stopped after batch 2 of 2")
	assert.Contains(t, d.Reason, "rolled back 1 of 1 host install(s)")
	require.Len(t, d.Rollbacks, 1)
	assert.Equal(t, "host-a", d.Rollbacks[0].Host)
	assert.True(t, d.Rollbacks[0].OK, d.Rollbacks[0].Error)
	for _, h := range []string{"host-a", "host-b"} {
		link, err := os.Readlink(filepath.Join(env.hosts[h], "autoroll", "current"))
		require.NoError(t, err)
		assert.Equal(t, first, filepath.Base(link), "current on %s", h)
	}
}
