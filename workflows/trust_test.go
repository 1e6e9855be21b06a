package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// TestStartedNamesThePrincipal: the STARTED event and the requester search
// attribute name who the manager authenticated, never the name the client
// claimed, and the plan is asked before anything is recorded.
func TestStartedNamesThePrincipal(t *testing.T) {
	p := farmPlan()
	p.Principal, p.Signer = "bob", "token:0123456789abcdef"
	s := newStand(p)
	env := newReleaseEnv(t, s)
	var mu sync.Mutex
	var requesters []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if v, ok := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(workflows.SARequester)); ok {
			mu.Lock()
			requesters = append(requesters, v)
			mu.Unlock()
		}
	}).Return(nil)
	in := installRequest()
	in.Request.Requester = "mallory"
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, in)
	require.NoError(t, env.GetWorkflowError())
	d := queryDetail(t, env)
	require.NotEmpty(t, d.Events)
	assert.Equal(t, workflows.StatusStarted, d.Events[0].Status)
	assert.Contains(t, d.Events[0].Detail, "requested by bob")
	for _, e := range d.Events {
		assert.NotContains(t, e.Detail, "mallory", "the claimed name is in no event")
	}
	assert.Equal(t, []string{"bob"}, requesters, "the requester search attribute is set once, to the principal")
	assert.Equal(t, "bob", d.Request.Requester)
	assert.Equal(t, "token:0123456789abcdef", d.Signer, "the verified signer is kept for request-id retries")
	// What the plan was asked to verify: the whole signed start.
	require.Len(t, s.plans, 1)
	assert.Equal(t, workflows.ReleaseWorkflowName, s.plans[0].Workflow)
	assert.Equal(t, testTX, s.plans[0].Transaction)
	assert.NotEmpty(t, s.plans[0].RunID)
}

// authorizer is a stand-in Authorize activity: tokens named in allow may
// do their action; everyone else is rejected.
type authorizer struct {
	mu    sync.Mutex
	allow map[string]string // claimed name -> action allowed
	calls []workflows.AuthorizeInput
}

func (a *authorizer) Authorize(_ context.Context, in workflows.AuthorizeInput) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, in)
	if a.allow[in.Claimed] != in.Action {
		return "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("user %s may not %s project %q", in.Claimed, in.Action, in.Project), workflows.ErrRejected, nil)
	}
	return in.Claimed, nil
}

// slowBuild blocks until cancelled, as a build step does.
func slowBuild(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
	for {
		select {
		case <-ctx.Done():
			return workflows.BuildResult{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
			activity.RecordHeartbeat(ctx)
		}
	}
}

// cancelUpdate sends a cancel update as by; out gets its outcome.
func cancelUpdate(env *testsuite.TestWorkflowEnvironment, by string, out *updateResult) {
	env.UpdateWorkflow(workflows.CancelUpdate, "cancel-"+by, &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { out.rejected = err; out.done = true },
		OnComplete: func(_ any, err error) { out.err = err; out.done = true },
	}, workflows.CancelRequest{By: by, Reason: "wrong branch"})
}

// TestCancelUpdateObeysPolicy: a cancel the manager does not authorize is
// refused and the release goes on; an authorized one stops the build and
// names who cancelled in the detail and the reason.
func TestCancelUpdateObeysPolicy(t *testing.T) {
	s := newStand(farmPlan())
	s.build = slowBuild
	env := newReleaseEnv(t, s)
	a := &authorizer{allow: map[string]string{"carol": "cancel"}}
	env.RegisterActivityWithOptions(a.Authorize, activity.RegisterOptions{Name: workflows.AuthorizeActivity})
	var mallory, carol updateResult
	var during workflows.Detail
	env.RegisterDelayedCallback(func() { cancelUpdate(env, "mallory", &mallory) }, time.Second)
	env.RegisterDelayedCallback(func() {
		during = queryDetail(t, env)
		cancelUpdate(env, "carol", &carol)
	}, 2*time.Second)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.True(t, mallory.done)
	require.Error(t, mallory.err)
	assert.Contains(t, mallory.err.Error(), "mallory may not cancel")
	assert.Nil(t, during.Cancelled, "a refused cancel records no canceller")
	assert.NotEqual(t, workflows.StatusCancelled, during.Status)
	require.True(t, carol.done)
	require.NoError(t, carol.err)
	require.NoError(t, carol.rejected)
	var ce *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &ce)
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusCancelled, d.Status)
	require.NotNil(t, d.Cancelled)
	assert.Equal(t, "carol", d.Cancelled.By)
	assert.Equal(t, "cancelled by carol: wrong branch", d.Reason)
	assert.Empty(t, s.installCalls(), "nothing installed")
	require.Len(t, a.calls, 2)
	assert.Equal(t, "cancel", a.calls[1].Action)
	assert.Equal(t, "test", a.calls[1].Env)
}

// TestLockWaitEnds: a release waiting longer than the environment's
// lock_timeout ends REJECTED naming the holder, leaves the lock's queue and
// installs nothing.
func TestLockWaitEnds(t *testing.T) {
	p := lockPlan(rollout.LockWait)
	p.LockTimeout = 10 * time.Minute
	s := newStand(p)
	env, ss := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "REJECTED", app.Type())
	assert.Contains(t, d.Reason, "waited 10m0s for lock lock-test-api, held by transaction tx-first")
	assert.Contains(t, d.Reason, "lock_timeout")
	assert.GreaterOrEqual(t, d.Ended.Sub(d.Started), 10*time.Minute, "it waited the whole timeout")
	assert.Empty(t, s.installCalls())
	assert.Equal(t, []string{"lock-test-api"}, ss.releasedLocks(), "it leaves the queue of the lock it waited for")
}

// gatedHosts is a rollback's hosts in an environment that needs approval
// with four eyes and a lock.
func gatedHosts() workflows.HostsResult {
	h := rolloutHosts()
	h.Approval = workflows.Approval{Required: true, FourEyes: true, Timeout: time.Hour}
	h.Lock = rollout.LockWait
	return h
}

// TestRollbackAsksApprovalAndLock: a rollback into an environment that
// needs approval waits in AWAITING_APPROVAL with no host touched; its
// requester cannot approve it; someone else's approval lets it take the
// lock and switch the hosts.
func TestRollbackAsksApprovalAndLock(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testTX, TaskQueue: workflows.DefaultManagerQueue})
	env.RegisterWorkflowWithOptions(workflows.Rollback, workflow.RegisterOptions{Name: workflows.RollbackWorkflowName})
	env.RegisterWorkflowWithOptions(workflows.RecordTransaction, workflow.RegisterOptions{Name: workflows.RecordTransactionWorkflowName})
	env.RegisterActivityWithOptions(recordNothing, activity.RegisterOptions{Name: workflows.RecordActivity})
	env.RegisterActivityWithOptions(startNoRecorder, activity.RegisterOptions{Name: workflows.StartRecorderActivity})
	env.RegisterActivityWithOptions(func(context.Context, workflows.HostsInput) (workflows.HostsResult, error) {
		return gatedHosts(), nil
	}, activity.RegisterOptions{Name: workflows.HostsActivity})
	a := &authorizer{allow: map[string]string{"bob": "install"}}
	env.RegisterActivityWithOptions(a.Authorize, activity.RegisterOptions{Name: workflows.AuthorizeActivity})
	var mu sync.Mutex
	var switched []string
	env.RegisterActivityWithOptions(func(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		mu.Lock()
		defer mu.Unlock()
		switched = append(switched, activity.GetInfo(ctx).TaskQueue)
		return workflows.RollbackHostResult{From: "tx-3", To: "tx-2"}, nil
	}, activity.RegisterOptions{Name: workflows.RollbackActivity})
	ss := &safetyStand{}
	ss.registerLocks(env)
	var waiting workflows.Detail
	var switchedWhileWaiting int
	var own updateResult
	env.RegisterDelayedCallback(func() {
		waiting = queryDetail(t, env)
		mu.Lock()
		switchedWhileWaiting = len(switched)
		mu.Unlock()
		decide(env, workflows.ApproveUpdate, "bob", &own)
	}, time.Minute)
	var carol updateResult
	env.RegisterDelayedCallback(func() { decide(env, workflows.ApproveUpdate, "carol", &carol) }, 2*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.LockAnswerSignal, workflows.LockAnswer{Lock: workflows.LockID("", "test", "app"), Granted: true})
	}, 3*time.Minute)
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, workflows.RollbackInput{Request: workflows.Request{Project: "site", Env: "test", Requester: "bob"}})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.True(t, carol.done)
	require.NoError(t, carol.rejected)
	assert.Equal(t, workflows.StatusAwaitingApproval, waiting.Status)
	assert.Zero(t, switchedWhileWaiting, "no host switched before approval")
	require.True(t, own.done)
	require.Error(t, own.rejected)
	assert.Contains(t, own.rejected.Error(), "four eyes")
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusRollbackCompleted, d.Status)
	require.NotNil(t, d.Approval)
	assert.Equal(t, "carol", d.Approval.By)
	require.Len(t, ss.locks, 1)
	assert.Equal(t, "lock-test-app", ss.locks[0].Lock)
	assert.Len(t, switched, 2)
	assert.True(t, strings.HasPrefix(d.Events[0].Detail, "rollback of site in test"))
	assert.Contains(t, d.Events[0].Detail, "requested by bob")
}

// TestWebhookReferencesOnly: a release whose plan names its webhooks
// notifies through references; no URL reaches an activity's input (and so
// the history).
func TestWebhookReferencesOnly(t *testing.T) {
	p := farmPlan()
	p.Hooks = []workflows.WebhookRef{{Env: "test", Index: 0, Name: "https://chat.example.com/…"}}
	s := newStand(p)
	env, ss := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, ss.notified, 1)
	assert.Empty(t, ss.notified[0].URL)
	require.NotNil(t, ss.notified[0].Webhook)
	assert.Equal(t, workflows.WebhookRef{Env: "test", Index: 0, Name: "https://chat.example.com/…"}, *ss.notified[0].Webhook)
	assert.Equal(t, workflows.StatusInstallCompleted, ss.notified[0].Notification.Status)
}

// TestRequestTransactionID: one request id names different transactions for
// different signers and managers, and never a workflow id as it is.
func TestRequestTransactionID(t *testing.T) {
	base := workflows.RequestTransactionID("relman-manager", "token:aaaa", "ci-release-42")
	assert.Regexp(t, `^r-[0-9a-f]{32}$`, base)
	for name, id := range map[string]string{
		"another signer":  workflows.RequestTransactionID("relman-manager", "gateway:alice@local", "ci-release-42"),
		"another manager": workflows.RequestTransactionID("relman-other", "token:aaaa", "ci-release-42"),
		"another key":     workflows.RequestTransactionID("relman-manager", "token:aaaa", "ci-release-43"),
	} {
		assert.NotEqual(t, base, id, name)
	}
	assert.Equal(t, base, workflows.RequestTransactionID("relman-manager", "token:aaaa", "ci-release-42"), "stable")
}

func TestSameRequest(t *testing.T) {
	a := workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "prod", Requester: "bob", RequestID: "x"}
	for name, tc := range map[string]struct {
		b    workflows.Request
		same bool
	}{
		"identical":          {a, true},
		"another requester":  {func() workflows.Request { b := a; b.Requester = "alice"; return b }(), true},
		"another env":        {func() workflows.Request { b := a; b.Env = "test"; return b }(), false},
		"another source":     {func() workflows.Request { b := a; b.Source.Branch = "x"; return b }(), false},
		"a rollout override": {func() workflows.Request { b := a; b.Rollout = &rollout.Policy{Batch: "2"}; return b }(), false},
		"rebuild":            {func() workflows.Request { b := a; b.Rebuild = true; return b }(), false},
	} {
		assert.Equal(t, tc.same, workflows.SameRequest(a, tc.b), name)
	}
}
