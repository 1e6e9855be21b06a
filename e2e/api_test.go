package e2e

import (
	"bytes"
	"context"
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

// A user with a relman token and the manager's URL, and no Temporal access
// at all (--address is a closed port, no other Temporal setting), releases,
// reads, lists, approves and cancels through the manager's API.
func TestUserWithOnlyTheManagersAPI(t *testing.T) {
	s := startSecure(t)
	port, err := freeTCPPort()
	require.NoError(t, err)
	noTemporal := fmt.Sprintf("127.0.0.1:%d", port)
	// user runs the real CLI with only a token and the manager's URL in
	// its environment.
	user := func(token string, args ...string) (string, string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		code := cli.Execute(ctx, append(args, "--address", noTemporal), cli.Options{
			Stdout: &out, Stderr: &errb,
			LookupEnv: func(k string) (string, bool) {
				switch k {
				case "RELMAN_TOKEN":
					return token, true
				case "RELMAN_MANAGER_URL":
					return s.gateway, true
				}
				return "", false
			},
		})
		return out.String(), errb.String(), code
	}
	bob := func(args ...string) (string, string, int) { t.Helper(); return user(s.token, args...) }

	// release --wait, to the end, with the CLI's progress.
	out, errOut, code := bob("release", "shop", "--env", "test", "--wait")
	require.Equal(t, cli.ExitOK, code, "stdout %s\nstderr %s", out, errOut)
	require.True(t, strings.HasPrefix(out, "transaction "), out)
	txid := strings.Fields(out)[1]
	assert.Contains(t, out, txid+" "+string(workflows.StatusInstallCompleted))
	assert.Contains(t, out, "host-secure", "the summary names the host")

	// Without a token, or with one the manager does not know, the request
	// is refused before anything starts: no transaction to end REJECTED.
	before, errOut, code := bob("list", "--project", "shop", "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	for _, token := range []string{"", "relman-token-not-one-of-ours"} {
		out, errOut, code = user(token, "release", "shop", "--env", "test")
		assert.NotEqual(t, cli.ExitOK, code, "release with token %q: %s", token, out)
		assert.Empty(t, strings.TrimSpace(out), "no transaction id is printed")
		assert.Contains(t, errOut, "token", "the refusal names the token")
	}
	after, errOut, code := bob("list", "--project", "shop", "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.JSONEq(t, before, after, "nothing was started")

	// status, as a word and whole.
	out, errOut, code = bob("status", txid)
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, string(workflows.StatusInstallCompleted), strings.TrimSpace(out))
	out, errOut, code = bob("status", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	assert.Equal(t, txid, d.Transaction)
	assert.Equal(t, "bob", d.Request.Requester, "the gateway records the token's user")
	require.Len(t, d.Installs, 1)
	assert.Equal(t, workflows.InstallInstalled, d.Installs[0].State)
	assert.NotEmpty(t, d.Commit)

	// The same methods serve the seed's XML-RPC clients.
	res, fault, msg := xmlrpcCall(t, s.gateway, `relman.get_transaction(dict(token='`+s.token+`'), '`+txid+`')['installs'][0]['state']`)
	require.Zero(t, fault, msg)
	assert.Equal(t, string(workflows.InstallInstalled), res)
	res, fault, msg = xmlrpcCall(t, s.gateway, `[r['transaction'] for r in relman.list_transactions(dict(token='`+s.token+`'), dict(project='shop', limit=5))]`)
	require.Zero(t, fault, msg)
	assert.Contains(t, res, txid)

	// list, history, where, registrations.
	out, errOut, code = bob("list", "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var rows []transaction.Listed
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	require.NotEmpty(t, rows)
	assert.Equal(t, txid, rows[0].Transaction, "newest first")
	assert.Equal(t, "shop", rows[0].Project)
	out, errOut, code = bob("list", "--project", "shop", "--env", "test")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, txid)
	out, errOut, code = bob("history", txid)
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, "status INSTALL_COMPLETED")
	assert.Contains(t, out, "requested by bob")
	out, errOut, code = bob("history", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var steps []transaction.Step
	require.NoError(t, json.Unmarshal([]byte(out), &steps), out)
	took := false
	for _, s := range steps {
		took = took || (s.Event == "completed" && s.Activity == "Install" && s.Took > 0)
	}
	assert.True(t, took, "the install's duration came through: %s", out)
	out, errOut, code = bob("where", "shop", "--env", "test")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, "host-secure")
	assert.Contains(t, out, txid)
	out, errOut, code = bob("registrations")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, "host-secure")

	// A release that waits (approval required), cancelled by its requester.
	out, errOut, code = bob("release", "shop", "--env", "gated")
	require.Equal(t, cli.ExitOK, code, errOut)
	waiting := strings.TrimSpace(out)
	require.Eventually(t, func() bool {
		o, _, _ := bob("status", waiting)
		return strings.TrimSpace(o) == string(workflows.StatusAwaitingApproval)
	}, time.Minute, 200*time.Millisecond)
	out, errOut, code = bob("cancel", waiting, "--reason", "not today")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, string(workflows.StatusCancelled), strings.TrimSpace(out))
	out, errOut, code = bob("status", waiting, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	d = workflows.Detail{}
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	require.NotNil(t, d.Cancelled)
	assert.Equal(t, "bob", d.Cancelled.By)

	// Another waits for approval; carol approves it with her token, four
	// eyes satisfied, and bob follows it to the end.
	out, errOut, code = bob("release", "shop", "--env", "gated")
	require.Equal(t, cli.ExitOK, code, errOut)
	gated := strings.TrimSpace(out)
	require.Eventually(t, func() bool {
		o, _, _ := bob("status", gated)
		return strings.TrimSpace(o) == string(workflows.StatusAwaitingApproval)
	}, time.Minute, 200*time.Millisecond)
	_, errOut, code = bob("approve", gated)
	assert.Equal(t, cli.ExitError, code)
	assert.Contains(t, errOut, "four eyes")
	_, errOut, code = user(s.carol, "approve", gated, "--comment", "looks right")
	require.Equal(t, cli.ExitOK, code, errOut)
	out, errOut, code = bob("status", gated, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Eventually(t, func() bool {
		o, _, c := bob("status", gated)
		return c == cli.ExitOK && strings.TrimSpace(o) == string(workflows.StatusInstallCompleted)
	}, 2*time.Minute, 500*time.Millisecond, out)

	// plan, as the manager would run it.
	out, errOut, code = bob("plan", "shop", "--env", "gated")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, "install of shop into gated (nothing was done)")
	assert.Contains(t, out, "target    web on host-secure")
	assert.Contains(t, out, "approval  required, by someone other than the requester")
	assert.Contains(t, out, "builder   builder-secure")
	out, errOut, code = bob("plan", "shop", "--env", "test", "--strategy", "rolling", "--batch", "1", "--pause", "2s")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, out, "rollout   rolling", "the rollout flags reach the manager")
	_, errOut, code = bob("plan", "shop", "--env", "nowhere")
	assert.Equal(t, cli.ExitUsage, code)
	assert.Contains(t, errOut, "the manager refuses the request")

	// What needs Temporal says so, and reaches nothing.
	_, errOut, code = bob("namespace", "prepare")
	assert.Equal(t, cli.ExitUsage, code)
	assert.Contains(t, errOut, "relman namespace prepare is not available over the manager's API")
}

// Over the open manager's API (authentication off: the user's name is
// taken as it is), with Temporal unreachable: --follow shows live
// progress, and a cancel stops a running build step.
func TestFollowAndCancelOverTheManagersAPI(t *testing.T) {
	port, err := freeTCPPort()
	require.NoError(t, err)
	noTemporal := fmt.Sprintf("127.0.0.1:%d", port)
	user := func(args ...string) (string, string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		code := cli.Execute(ctx, append(args, "--address", noTemporal, "--manager-url", env.gatewayURL), cli.Options{
			Stdout: &out, Stderr: &errb,
			LookupEnv: func(k string) (string, bool) {
				if k == "RELMAN_REQUESTER" {
					return "api-user", true
				}
				return "", false
			},
		})
		return out.String(), errb.String(), code
	}

	out, errOut, code := user("release", "shop", "--env", "test", "--follow")
	require.Equal(t, cli.ExitOK, code, errOut)
	for _, want := range []string{"STARTED", "BUILD_COMPLETED", "INSTALL_COMPLETED", "install installed web on host-a", "install installed tool on host-b"} {
		assert.Contains(t, out, want)
	}

	pidfile := filepath.Join(env.Root, "slow.pid")
	_ = os.Remove(pidfile)
	out, errOut, code = user("release", "slow", "--env", "test")
	require.Equal(t, cli.ExitOK, code, errOut)
	txid := strings.TrimSpace(out)
	pid := slowBuildPID(t, pidfile)
	out, errOut, code = user("cancel", txid, "--reason", "too slow")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, "CANCELLED\n", out)
	require.Eventually(t, func() bool { return !alive(pid) }, 20*time.Second, 100*time.Millisecond)
	out, errOut, code = user("status", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	assert.Equal(t, workflows.StatusCancelled, d.Status)
	require.NotNil(t, d.Cancelled)
	assert.Equal(t, "api-user", d.Cancelled.By)
	assert.Equal(t, "api-user", d.Request.Requester)
}
