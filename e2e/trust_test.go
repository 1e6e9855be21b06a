package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// cli runs the relman CLI against the secure stack with token (none when
// empty), claiming to be requester.
func (s *secureStack) cli(t *testing.T, token, requester string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code = cli.Execute(ctx, append(args, "--address", env.Address, "--manager-queue", s.queue), cli.Options{
		Stdout: &out, Stderr: &errb,
		LookupEnv: func(k string) (string, bool) {
			switch k {
			case "RELMAN_TOKEN":
				return token, token != ""
			case "RELMAN_TOKEN_FILE":
				return "", false
			case "RELMAN_REQUESTER":
				return requester, requester != ""
			}
			return os.LookupEnv(k)
		},
	})
	return out.String(), errb.String(), code
}

// alice is alice's credentials, as a Python expression.
func (s *secureStack) alice() string {
	return `dict(username='alice', password='` + s.password + `')`
}

// activities lists the activity types scheduled in the latest run of id.
func activities(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	for _, e := range history(t, id).GetEvents() {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			out = append(out, a.GetActivityType().GetName())
		}
		if a := e.GetMarkerRecordedEventAttributes(); a != nil && a.GetMarkerName() == "LocalActivity" {
			out = append(out, "local activity")
		}
	}
	return out
}

// startInput is the input the latest run of Release txid was started with.
func startInput(t *testing.T, txid string) workflows.ReleaseInput {
	t.Helper()
	a := history(t, txid).GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	var in workflows.ReleaseInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(a.GetInput().GetPayloads()[0], &in))
	return in
}

// TestTrustBetweenUsers tries, against a stack with authentication on
// (alice tester, bob deployer, carol approver), what a hostile or careless
// user would, and checks each is refused with nothing written, run or
// installed. Issue #12, item by item; the README's threat model names it.
func TestTrustBetweenUsers(t *testing.T) {
	s := startSecure(t)
	env.DumpOnFailure(t)
	ctx := context.Background()
	key, err := auth.ParseToken(s.token)
	require.NoError(t, err)

	t.Run("request ids stay with their requester", func(t *testing.T) {
		data := `dict(project='shop', action='install', env='test', request_id='ci-release-42')`
		res, code, msg := xmlrpcCall(t, s.gateway, `relman.request_action(`+s.alice()+`, `+data+`)`)
		require.Zero(t, code, msg)
		aliceTx := res.(string)
		assert.NotEqual(t, "ci-release-42", aliceTx, "a request id never becomes a workflow id as it is")
		d, err := final(t, aliceTx)
		require.NoError(t, err)
		require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)

		// bob sends the same request id for a prod release: a transaction
		// of his own, never alice's.
		out, errOut, code := s.cli(t, s.token, "mallory", "release", "shop", "--env", "prod", "--request-id", "ci-release-42")
		require.Equal(t, cli.ExitOK, code, errOut)
		bobTx := strings.TrimSpace(out)
		assert.NotEqual(t, aliceTx, bobTx)
		d, err = final(t, bobTx)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
		assert.Equal(t, "prod", d.Request.Env)
		assert.Equal(t, "bob", d.Request.Requester)

		// The same key again: the same transaction, for each of them.
		out, errOut, code = s.cli(t, s.token, "bob", "release", "shop", "--env", "prod", "--request-id", "ci-release-42")
		require.Equal(t, cli.ExitOK, code, errOut)
		assert.Equal(t, bobTx, strings.TrimSpace(out))
		res, code, msg = xmlrpcCall(t, s.gateway, `relman.request_action(`+s.alice()+`, `+data+`)`)
		require.Zero(t, code, msg)
		assert.Equal(t, aliceTx, res)

		// The same key for another request is refused, not answered with
		// the old transaction.
		_, errOut, code = s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--request-id", "ci-release-42")
		assert.Equal(t, cli.ExitError, code)
		assert.Contains(t, errOut, `request id "ci-release-42" was used for transaction `+bobTx+", a different request")
		_, code, msg = xmlrpcCall(t, s.gateway, `relman.request_action(`+s.alice()+`, dict(project='shop', action='install', env='test', branch='other', request_id='ci-release-42'))`)
		assert.Equal(t, 4, code)
		assert.Contains(t, msg, "a different request")

		// alice's transaction is as she left it.
		d, err = final(t, aliceTx)
		require.NoError(t, err)
		assert.Equal(t, "test", d.Request.Env)
		assert.Equal(t, "alice", d.Request.Requester)
		n, err := env.ListByID(ctx, aliceTx)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "alice's transaction ran once")

		// The log says who asked: bob, whatever name the client claimed.
		hist, _, code := relman(t, "history", bobTx)
		require.Equal(t, cli.ExitOK, code)
		assert.Contains(t, hist, "requested by bob")
		assert.NotContains(t, hist, "mallory")
		for _, e := range d.Events {
			assert.NotContains(t, e.Detail, "mallory")
		}
	})

	t.Run("a request id cannot take relman's own ids", func(t *testing.T) {
		lockID := workflows.LockID(s.queue, "test", "web")
		out, errOut, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--request-id", lockID, "--wait")
		require.Equal(t, cli.ExitOK, code, errOut)
		txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
		assert.NotEqual(t, lockID, txid)
		assert.Contains(t, out, "INSTALL_COMPLETED")
		desc, err := env.Client.DescribeWorkflowExecution(ctx, lockID, "")
		require.NoError(t, err)
		assert.Equal(t, workflows.LockWorkflowName, desc.GetWorkflowExecutionInfo().GetType().GetName(), "the lock's id holds the lock")
		// A later release takes the lock and ends.
		out, errOut, code = s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--wait")
		require.Equal(t, cli.ExitOK, code, errOut)
		assert.Contains(t, out, "INSTALL_COMPLETED")

		// With namespace access, bob starts a Release under a lock's id
		// himself, with a valid signature: the manager rejects it at once.
		free := workflows.LockID(s.queue, "vault", "web")
		in := workflows.ReleaseInput{Request: workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test", Requester: "bob"}}
		sig := auth.SignWithToken(key, workflows.ReleaseStart(free, in).Payload(), time.Now())
		in.Signature = &sig
		_, err = env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: free, TaskQueue: s.queue}, workflows.ReleaseWorkflowName, in)
		require.NoError(t, err)
		d, _ := final(t, free)
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, "is not one relman gives")
		assert.NotContains(t, activities(t, free), workflows.BuildActivity, "nothing built")
		assert.NotContains(t, activities(t, free), workflows.RequestLockActivity, "no lock asked")
	})

	t.Run("a signature is good once, for everything that runs", func(t *testing.T) {
		out, errOut, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--wait")
		require.Equal(t, cli.ExitOK, code, errOut)
		txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
		// The same signed input, started again under the same id once the
		// first run closed (temporal workflow start --id-reuse-policy
		// AllowDuplicate).
		in := startInput(t, txid)
		require.NotNil(t, in.Signature)
		// --wait returns at the final status; the run closes a moment later
		// (its webhooks, its record). A start while it runs would only hand
		// back the first run.
		_ = env.Client.GetWorkflow(ctx, txid, "").Get(ctx, nil)
		run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: txid, TaskQueue: s.queue,
			WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WorkflowExecutionErrorWhenAlreadyStarted: true}, workflows.ReleaseWorkflowName, in)
		require.NoError(t, err)
		d, _ := final(t, run.GetID())
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, "has run before")
		assert.NotContains(t, activities(t, txid), workflows.BuildActivity, "the second run built nothing")
		assert.NotContains(t, activities(t, txid), workflows.InstallActivity, "the second run installed nothing")

		// A timeout changed after signing breaks the signature.
		id := uuid.Must(uuid.NewV7()).String()
		in = workflows.ReleaseInput{Request: workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test", Requester: "bob"}}
		sig := auth.SignWithToken(key, workflows.ReleaseStart(id, in).Payload(), time.Now())
		in.Signature = &sig
		in.BuildTimeout = 240 * time.Hour
		_, err = env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.queue}, workflows.ReleaseWorkflowName, in)
		require.NoError(t, err)
		d, _ = final(t, id)
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, "not authenticated")
		assert.Empty(t, d.Request.Requester, "who asked is unknown; the claim is not recorded as a fact")
		assert.NotContains(t, activities(t, id), workflows.BuildActivity)
	})

	t.Run("cancel obeys the policy", func(t *testing.T) {
		out, errOut, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "gated")
		require.Equal(t, cli.ExitOK, code, errOut)
		txid := strings.TrimSpace(out)
		waitStatus(t, txid, workflows.StatusAwaitingApproval)

		_, errOut, code = s.cli(t, "", "carol", "cancel", txid)
		assert.Equal(t, cli.ExitError, code)
		assert.Contains(t, errOut, "not authenticated", "no relman credentials, no cancel")
		_, errOut, code = s.cli(t, s.carol, "carol", "cancel", txid)
		assert.Equal(t, cli.ExitError, code)
		assert.Contains(t, errOut, "carol (roles approver) may not cancel")
		_, fault, msg := xmlrpcCall(t, s.gateway, `relman.cancel_transaction(`+s.alice()+`, '`+txid+`')`)
		assert.Equal(t, 9, fault)
		assert.Contains(t, msg, "alice (roles tester) may not cancel")
		waitStatus(t, txid, workflows.StatusAwaitingApproval)

		out, errOut, code = s.cli(t, s.token, "whoever", "cancel", txid, "--reason", "wrong build")
		require.Equal(t, cli.ExitOK, code, errOut)
		assert.Equal(t, "CANCELLED\n", out)
		d, err := transaction.Get(ctx, env.Client, txid)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusCancelled, d.Status)
		require.NotNil(t, d.Cancelled)
		assert.Equal(t, "bob", d.Cancelled.By)
		assert.Equal(t, "cancelled by bob: wrong build", d.Reason)
		hist, _, _ := relman(t, "history", txid)
		assert.Contains(t, hist, "cancel requested by bob")
		assert.NotContains(t, activities(t, txid), workflows.InstallActivity)
	})

	t.Run("a rollback asks the approval a release asks", func(t *testing.T) {
		out, errOut, code := s.cli(t, s.token, "bob", "rollback", "shop", "--env", "gated")
		require.Equal(t, cli.ExitOK, code, errOut)
		txid := strings.TrimSpace(out)
		waitStatus(t, txid, workflows.StatusAwaitingApproval)
		_, errOut, code = s.cli(t, s.token, "someone-else", "approve", txid)
		assert.NotEqual(t, cli.ExitOK, code)
		assert.Contains(t, errOut, "four eyes")
		_, errOut, code = s.cli(t, s.carol, "carol", "reject", txid, "--reason", "not now")
		require.Equal(t, cli.ExitOK, code, errOut)
		d, _ := final(t, txid)
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, "rejected by carol")
		assert.Equal(t, "bob", d.Request.Requester)
		assert.NotContains(t, activities(t, txid), workflows.RollbackActivity, "no host switched")

		// Unsigned, it is not even considered.
		out, errOut, code = s.cli(t, "", "bob", "rollback", "shop", "--env", "test")
		require.Equal(t, cli.ExitOK, code, errOut)
		d, _ = final(t, strings.TrimSpace(out))
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, "not authenticated")
		assert.NotContains(t, activities(t, strings.TrimSpace(out)), workflows.RollbackActivity)
	})

	t.Run("a lock wait ends", func(t *testing.T) {
		// A release awaiting approval stands in for a holder that never
		// lets go.
		out, errOut, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "gated")
		require.Equal(t, cli.ExitOK, code, errOut)
		holder := strings.TrimSpace(out)
		waitStatus(t, holder, workflows.StatusAwaitingApproval)
		lock := workflows.LockID(s.queue, "locked", "web")
		_, err := env.Client.SignalWithStartWorkflow(ctx, lock, workflows.LockRequestSignal,
			workflows.LockRequest{Lock: lock, Env: "locked", Target: "web", Transaction: holder},
			client.StartWorkflowOptions{ID: lock, TaskQueue: s.queue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE},
			workflows.LockWorkflowName, workflows.LockState{Env: "locked", Target: "web"})
		require.NoError(t, err)

		out, errOut, code = s.cli(t, s.token, "bob", "release", "shop", "--env", "locked", "--wait")
		assert.Equal(t, cli.ExitReleaseFailed, code, out)
		txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
		d, _ := final(t, txid)
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, "waited 5s for lock "+lock+", held by transaction "+holder)
		var statuses []workflows.Status
		for _, e := range d.Events {
			statuses = append(statuses, e.Status)
		}
		assert.Contains(t, statuses, workflows.StatusWaiting)
		assert.NotContains(t, activities(t, txid), workflows.InstallActivity, "nothing installed")
		v, err := env.Client.QueryWorkflow(ctx, lock, "", workflows.LockQuery)
		require.NoError(t, err)
		var st workflows.LockState
		require.NoError(t, v.Get(&st))
		assert.Equal(t, holder, st.Holder)
		assert.NotContains(t, st.Queue, txid, "it left the lock's queue")
		_, errOut, code = s.cli(t, s.token, "bob", "cancel", holder)
		require.Equal(t, cli.ExitOK, code, errOut)
	})

	t.Run("a protected environment needs a rule that names it", func(t *testing.T) {
		out, _, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "vault", "--wait")
		assert.Equal(t, cli.ExitReleaseFailed, code)
		txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
		d, _ := final(t, txid)
		assert.Equal(t, workflows.StatusRejected, d.Status)
		assert.Contains(t, d.Reason, `environment "vault" is protected`)
		assert.NotContains(t, activities(t, txid), workflows.BuildActivity)
		_, fault, msg := xmlrpcCall(t, s.gateway, `relman.request_action(`+s.alice()+`, dict(project='shop', action='install', env='vault'))`)
		assert.Equal(t, 6, fault)
		assert.Contains(t, msg, "protected")
	})

	t.Run("a build record rewritten in the store is not installed", func(t *testing.T) {
		out, errOut, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--wait")
		require.Equal(t, cli.ExitOK, code, errOut)
		first, _ := final(t, strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction "))
		good := first.Artifacts["web"]

		// A store writer packs a site of their own, puts it in the store
		// and points the build record at it.
		ctx := context.Background()
		store, err := artifact.OpenStore(ctx, "file://"+filepath.Join(env.Root, "artifacts"))
		require.NoError(t, err)
		defer store.Close()
		evilDir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(evilDir, "index.html"), []byte("<h1>pwned</h1>\n"), 0o644))
		var tgz bytes.Buffer
		require.NoError(t, archive.WriteTarGz(ctx, &tgz, evilDir))
		evil, err := store.Put(ctx, &tgz)
		require.NoError(t, err)
		records, _ := filepath.Glob(filepath.Join(env.Root, "artifacts", "builds", "shop", first.Commit+"-*.json"))
		rewritten := 0
		for _, r := range records {
			b, err := os.ReadFile(r)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(b, &doc))
			arts, _ := doc["artifacts"].(map[string]any)
			if web, ok := arts["web"].(map[string]any); ok && web["sha256"] == good.SHA256 {
				arts["web"] = map[string]any{"key": evil.Key, "sha256": evil.SHA256, "size": evil.Size, "format": "tar.gz"}
				b, err = json.Marshal(doc)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(r, b, 0o644))
				rewritten++
			}
		}
		require.NotZero(t, rewritten, "no build record of %s names %s", first.Commit, good.SHA256)

		out, errOut, code = s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--wait")
		require.Equal(t, cli.ExitOK, code, errOut)
		second, _ := final(t, strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction "))
		assert.Equal(t, workflows.StatusInstallCompleted, second.Status)
		assert.Equal(t, good.SHA256, second.Artifacts["web"].SHA256, "the builder's own bytes, rebuilt")
		assert.NotEqual(t, evil.SHA256, second.Artifacts["web"].SHA256)
		site := readFile(t, filepath.Join(s.dir, "host", "test", "www", "index.html"))
		assert.NotContains(t, site, "pwned")
		// Builders of every stack here poll relman-build-shop: whichever
		// built it said why.
		logs, _ := filepath.Glob(filepath.Join(env.Root, "logs", "*builder*.log"))
		said := false
		for _, l := range logs {
			said = said || strings.Contains(readFile(t, l), "build record does not verify")
		}
		assert.True(t, said, "a builder logged the record that did not verify")
	})

	t.Run("secrets stay secret", func(t *testing.T) {
		out, errOut, code := s.cli(t, s.token, "bob", "release", "shop", "--env", "test", "--wait")
		require.Equal(t, cli.ExitOK, code, errOut)
		txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
		require.Eventually(t, func() bool {
			for _, p := range s.hooks.received() {
				if strings.Contains(p, s.hookSecret) {
					return true
				}
			}
			return false
		}, 30*time.Second, 200*time.Millisecond, "the webhook was notified at its whole URL")
		// Neither the history nor any log of the stack holds the
		// webhook's secret.
		assertSecretsAbsent(t, txid, s.hookSecret)
		for name, want := range map[string]os.FileMode{
			"gateway.secret":                         0o600,
			"users.yaml":                             0o600,
			filepath.Join("logs", "manager.log"):     0o640,
			filepath.Join("..", "build-signing.key"): 0o600,
		} {
			st, err := os.Stat(filepath.Join(s.dir, name))
			require.NoError(t, err, name)
			assert.Equal(t, want, st.Mode().Perm(), name)
		}
	})
}
