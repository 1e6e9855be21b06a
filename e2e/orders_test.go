package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	relact "github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/workflows"
)

// attack is what the attacker's workflow asks a host to do.
type attack struct {
	Host  string                 `json:"host"`
	Input workflows.InstallInput `json:"input"`
}

// attackWorkflow schedules the Install activity on a real host's queue,
// once, as anyone with access to the namespace can, and returns how it
// ended: "installed", or the error's type and message.
func attackWorkflow(ctx workflow.Context, a attack) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              workflows.HostQueue(workflows.DefaultManagerQueue, a.Host),
		ScheduleToStartTimeout: 30 * time.Second,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	err := workflow.ExecuteActivity(ctx, workflows.InstallActivity, a.Input).Get(ctx, nil)
	if err == nil {
		return "installed", nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type() + ": " + app.Message(), nil
	}
	return "error: " + err.Error(), nil
}

// snapshot is every file under dir and its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	}))
	return out
}

// installOrder is the install input (with its signed order) the release
// txid scheduled for target on host, from the release's history.
func installOrder(t *testing.T, txid, host, target string) workflows.InstallInput {
	t.Helper()
	for _, e := range history(t, txid).GetEvents() {
		a := e.GetActivityTaskScheduledEventAttributes()
		if a == nil || a.GetActivityType().GetName() != workflows.InstallActivity || a.GetTaskQueue().GetName() != workflows.HostQueue(workflows.DefaultManagerQueue, host) {
			continue
		}
		var in workflows.InstallInput
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(a.GetInput().GetPayloads()[0], &in))
		if in.Target == target {
			return in
		}
	}
	t.Fatalf("release %s scheduled no install of %s on %s", txid, target, host)
	return workflows.InstallInput{}
}

// TestOrdersRefuseAttackers: someone with full access to the namespace but
// not the manager's key runs a worker and workflow of their own that
// schedules Install on host-a's queue. The host refuses an install with no
// order, with an order they signed with a key of their own, and with a
// genuine order copied from an earlier release's history (the old release
// replayed: a downgrade without touching the store), and installs nothing;
// the manager's own releases still install.
func TestOrdersRefuseAttackers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env.DumpOnFailure(t)
	www := filepath.Join(env.hosts["host-a"], "www")

	// Two genuine releases: the first one's order is the one replayed.
	commit(t, "", map[string]string{"site/index.html": "<h1>orders old</h1>\n"})
	old, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"}))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, old.Status)
	genuine := installOrder(t, old.Transaction, "host-a", "web")
	require.NotNil(t, genuine.Order, "the manager signed its order")
	assert.Equal(t, workflows.OrderInstall, genuine.Order.Order.Action)
	assert.Equal(t, "host-a", genuine.Order.Order.Host)
	commit(t, "", map[string]string{"site/index.html": "<h1>orders new</h1>\n"})
	cur, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"}))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, cur.Status)
	require.Equal(t, "<h1>orders new</h1>\n", readFile(t, filepath.Join(www, "index.html")))
	before := snapshot(t, www)

	// The attacker's own site, in the store (they can write it too).
	store, err := artifact.OpenStore(ctx, "file://"+filepath.Join(env.Root, "artifacts"))
	require.NoError(t, err)
	defer store.Close()
	evilDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(evilDir, "index.html"), []byte("<h1>pwned</h1>\n"), 0o644))
	var tgz bytes.Buffer
	require.NoError(t, archive.WriteTarGz(ctx, &tgz, evilDir))
	evil, err := store.Put(ctx, &tgz)
	require.NoError(t, err)
	evilIn := workflows.InstallInput{Transaction: "tx-evil", Project: "shop", Env: "test", Target: "web",
		Artifact: workflows.ArtifactRef{Key: evil.Key, SHA256: evil.SHA256, Size: evil.Size, Format: "tar.gz"}}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	forged, err := auth.SignOrder(key, auth.Order{ID: "evil-1", Namespace: "default", Queue: workflows.DefaultManagerQueue,
		Transaction: evilIn.Transaction, RunID: "run", Host: "host-a", Env: "test", Target: "web",
		Action: workflows.OrderInstall, SHA256: evil.SHA256, Expires: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	withForged := evilIn
	withForged.Order = &forged

	// The attacker's worker: a client of its own, a queue of its own.
	c, err := testenv.Dial(env.Address)
	require.NoError(t, err)
	defer c.Close()
	queue := "attacker-" + uuid.NewString()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(attackWorkflow, workflow.RegisterOptions{Name: "Attack"})
	require.NoError(t, w.Start())
	defer w.Stop()
	run := func(a attack) string {
		t.Helper()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "attack-" + uuid.NewString(), TaskQueue: queue}, "Attack", a)
		require.NoError(t, err)
		var out string
		require.NoError(t, r.Get(ctx, &out))
		return out
	}

	for name, tc := range map[string]struct {
		a    attack
		want string
	}{
		"no order":           {attack{Host: "host-a", Input: evilIn}, "no signed order"},
		"own key":            {attack{Host: "host-a", Input: withForged}, "signed by an unknown key"},
		"replayed order":     {attack{Host: "host-a", Input: genuine}, "already used by another activity"},
		"order of host-a":    {attack{Host: "host-b", Input: genuine}, `the order is for "host-a"`},
		"genuine order, new": {attack{Host: "host-a", Input: func() workflows.InstallInput { x := genuine; x.Artifact = evilIn.Artifact; return x }()}, "sha256"},
	} {
		t.Run(name, func(t *testing.T) {
			got := run(tc.a)
			assert.True(t, strings.HasPrefix(got, relact.ErrOrderRefused+": "), "want the order refused, got %s", got)
			assert.Contains(t, got, tc.want)
		})
	}
	// Nothing was installed: host-a serves the last genuine release.
	assert.Equal(t, before, snapshot(t, www))
	assert.NotContains(t, readFile(t, filepath.Join(www, "index.html")), "pwned")
	assert.Equal(t, "<h1>orders new</h1>\n", readFile(t, filepath.Join(env.hosts["host-b"], "www", "index.html")))
	// And the host said why, at warn.
	log := readFile(t, filepath.Join(env.Root, "logs", "host-a.log"))
	assert.Contains(t, log, "order refused")
	assert.Contains(t, log, "tx-evil")
}

// TestResetReleaseGetsNoOrders: `temporal workflow reset` of a completed
// release to just before its installs (past its plan, signature and
// approval), as anyone with namespace access can, makes a new run that
// would install again; the manager gives a reset run no orders, so every
// host refuses it and the reset run ends INSTALL_FAILED.
func TestResetReleaseGetsNoOrders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	txid := start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"})
	d, err := final(t, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status)

	// The last workflow task completed before the first install.
	var resetAt int64
	for _, e := range history(t, txid).GetEvents() {
		if e.GetWorkflowTaskCompletedEventAttributes() != nil {
			resetAt = e.GetEventId()
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == workflows.InstallActivity {
			break
		}
	}
	require.NotZero(t, resetAt)
	desc, err := env.Client.DescribeWorkflowExecution(ctx, txid, "")
	require.NoError(t, err)
	res, err := env.Client.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 config.DefaultNamespace,
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: txid, RunId: desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()},
		Reason:                    "an attacker replays a finished release",
		WorkflowTaskFinishEventId: resetAt,
		RequestId:                 uuid.NewString(),
	})
	require.NoError(t, err)

	var again workflows.Detail
	err = env.Client.GetWorkflow(ctx, txid, res.GetRunId()).Get(ctx, &again)
	require.Error(t, err, "the reset run must not complete")
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.NoError(t, app.Details(&again))
	assert.Equal(t, workflows.StatusInstallFailed, again.Status)
	assert.Contains(t, again.Reason, "no signed order")
	for _, in := range again.Installs {
		assert.NotEqual(t, workflows.InstallInstalled, in.State, "%s/%s installed by a reset run", in.Host, in.Target)
	}
}
