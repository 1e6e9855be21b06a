package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// rowPlan has one target, web, on four hosts.
func rowPlan(r rollout.Policy) workflows.Plan {
	return workflows.Plan{
		Targets: []string{"web"},
		Hosts:   map[string][]string{"web": {"host-d", "host-b", "host-a", "host-c"}},
		Rollout: r,
	}
}

// safetyStand adds the safe-rollout activities to a stand.
type safetyStand struct {
	mu       sync.Mutex
	locks    []workflows.LockRequest
	released []workflows.ReleaseLockInput
	// grant: the lock answers granted at once; else it says the release
	// waits behind tx-first, and the test signals what comes next.
	grant     bool
	notified  []workflows.NotifyInput
	notifyErr error
	rollbacks []workflows.RollbackHostInput
}

func (s *safetyStand) AcquireLock(_ context.Context, req workflows.LockRequest) (workflows.LockAnswer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locks = append(s.locks, req)
	if s.grant {
		return workflows.LockAnswer{Lock: req.Lock, Granted: true}, nil
	}
	return workflows.LockAnswer{Lock: req.Lock, Holder: "tx-first", Position: 1}, nil
}

func (s *safetyStand) ReleaseLock(_ context.Context, in workflows.ReleaseLockInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = append(s.released, in)
	return nil
}

// releasedLocks are the locks given back, in order.
func (s *safetyStand) releasedLocks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, in := range s.released {
		out = append(out, in.Lock)
	}
	return out
}

// registerLocks registers the lock's local activities of s.
func (s *safetyStand) registerLocks(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivityWithOptions(s.AcquireLock, activity.RegisterOptions{Name: workflows.AcquireLockActivity})
	env.RegisterActivityWithOptions(s.ReleaseLock, activity.RegisterOptions{Name: workflows.ReleaseLockActivity})
}

func (s *safetyStand) Notify(_ context.Context, in workflows.NotifyInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notified = append(s.notified, in)
	return s.notifyErr
}

func (s *safetyStand) Rollback(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollbacks = append(s.rollbacks, in)
	return workflows.RollbackHostResult{Host: activity.GetInfo(ctx).TaskQueue}, nil
}

func newSafetyEnv(t *testing.T, s *stand) (*testsuite.TestWorkflowEnvironment, *safetyStand) {
	env := newReleaseEnv(t, s)
	ss := &safetyStand{}
	ss.registerLocks(env)
	env.RegisterActivityWithOptions(ss.Notify, activity.RegisterOptions{Name: workflows.NotifyActivity})
	env.RegisterActivityWithOptions(ss.Rollback, activity.RegisterOptions{Name: workflows.RollbackActivity})
	return env, ss
}

func failOn(hosts ...string) func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
	return func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		for _, h := range hosts {
			if h == host {
				return workflows.InstallResult{}, temporal.NewNonRetryableApplicationError("disk full on "+host, workflows.ErrBadArtifact, nil)
			}
		}
		return okInstall(host, in, activity.GetInfo(ctx).Attempt), nil
	}
}

// A rolling release stops once more hosts failed than max_failures allows:
// the later batches are never attempted.
func TestRollingStopsAfterFailureThreshold(t *testing.T) {
	s := newStand(rowPlan(rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "1", Pause: 30 * time.Second, MaxFailures: "0"}))
	s.install = failOn("host-b")
	env, _ := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	assert.Contains(t, d.Reason, "stopped after batch 2 of 4")
	assert.Contains(t, d.Reason, "host-b")
	assert.Contains(t, d.Reason, "host-c, host-d")
	assert.Equal(t, [][]string{{"host-a"}, {"host-b"}, {"host-c"}, {"host-d"}}, d.Batches)
	require.NotNil(t, d.Rollout)
	assert.Equal(t, rollout.StrategyRolling, d.Rollout.Strategy)
	var hosts []string
	for _, c := range s.installCalls() {
		hosts = append(hosts, c.Host)
	}
	assert.ElementsMatch(t, []string{"host-a", "host-b"}, hosts, "later batches must stay untouched")
	want := map[string]struct {
		state workflows.InstallState
		batch int
	}{
		"host-a": {workflows.InstallInstalled, 1},
		"host-b": {workflows.InstallFailedS, 2},
		"host-c": {workflows.InstallSkipped, 3},
		"host-d": {workflows.InstallSkipped, 4},
	}
	for h, w := range want {
		r := findInstall(t, d, h, "web")
		assert.Equal(t, w.state, r.State, h)
		assert.Equal(t, w.batch, r.Batch, h)
	}
	// The pause ran once, between batch 1 and 2, on the workflow clock.
	a, b := findInstall(t, d, "host-a", "web"), findInstall(t, d, "host-b", "web")
	assert.GreaterOrEqual(t, b.Started.Sub(a.Ended), 30*time.Second)
}

func TestRollingToleratesMaxFailures(t *testing.T) {
	s := newStand(rowPlan(rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "50%", MaxFailures: "1"}))
	s.install = failOn("host-a")
	env, _ := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Equal(t, [][]string{{"host-a", "host-b"}, {"host-c", "host-d"}}, d.Batches)
	assert.Len(t, s.installCalls(), 4)
	assert.Contains(t, d.Events[len(d.Events)-1].Detail, "1 host(s) failed within max_failures 1")
}

func unreachableOn(host string) func(ctx context.Context, h string, in workflows.InstallInput) (workflows.InstallResult, error) {
	return func(ctx context.Context, h string, in workflows.InstallInput) (workflows.InstallResult, error) {
		if h == host {
			return workflows.InstallResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		return okInstall(h, in, activity.GetInfo(ctx).Attempt), nil
	}
}

func TestUnreachableSkip(t *testing.T) {
	s := newStand(rowPlan(rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "2", Unreachable: rollout.UnreachableSkip}))
	s.install = unreachableOn("host-a")
	env, _ := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError(), "a skipped unreachable host is not a failure")
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	r := findInstall(t, d, "host-a", "web")
	assert.Equal(t, workflows.InstallSkipped, r.State)
	assert.Contains(t, r.Error, "unreachable")
	assert.Equal(t, workflows.InstallInstalled, findInstall(t, d, "host-d", "web").State)
	assert.Contains(t, d.Events[len(d.Events)-1].Detail, "skipped unreachable: host-a/web")
}

func TestUnreachableFail(t *testing.T) {
	s := newStand(rowPlan(rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "2", Unreachable: rollout.UnreachableFail}))
	s.install = unreachableOn("host-a")
	env, _ := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	assert.Contains(t, d.Reason, "stopped after batch 1 of 2")
	assert.Equal(t, workflows.InstallFailedS, findInstall(t, d, "host-a", "web").State)
	assert.Equal(t, workflows.InstallInstalled, findInstall(t, d, "host-b", "web").State)
	assert.Equal(t, workflows.InstallSkipped, findInstall(t, d, "host-c", "web").State)
}

func TestRollingAutoRollback(t *testing.T) {
	s := newStand(rowPlan(rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "1", AutoRollback: true}))
	s.install = failOn("host-c")
	env, ss := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	assert.Contains(t, d.Reason, "rolled back 2 of 2 host install(s)")
	require.Len(t, ss.rollbacks, 2)
	var rolled []string
	for _, rb := range d.Rollbacks {
		assert.True(t, rb.OK)
		rolled = append(rolled, rb.Host)
	}
	assert.Equal(t, []string{"host-a", "host-b"}, rolled)
	assert.True(t, findInstall(t, d, "host-a", "web").RolledBack)
	assert.False(t, findInstall(t, d, "host-c", "web").RolledBack)
	assert.Equal(t, "template", ss.rollbacks[0].Project)
	assert.Equal(t, "web", ss.rollbacks[0].Target)
}

func approvalPlan(fourEyes bool) workflows.Plan {
	p := farmPlan()
	p.Approval = workflows.Approval{Required: true, FourEyes: fourEyes, Timeout: time.Hour}
	p.Webhooks = []string{"http://hooks.invalid/relman"}
	return p
}

// decide sends an approve or reject update and returns its outcome.
type updateResult struct {
	rejected error
	err      error
	done     bool
}

func decide(env *testsuite.TestWorkflowEnvironment, name, by string, out *updateResult) {
	env.UpdateWorkflow(name, name+"-"+by, &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { out.rejected = err; out.done = true },
		OnComplete: func(_ any, err error) { out.err = err; out.done = true },
	}, workflows.ApprovalDecision{By: by, Comment: "looks good"})
}

func TestApprovalApprove(t *testing.T) {
	s := newStand(approvalPlan(false))
	env, ss := newSafetyEnv(t, s)
	var statusBefore workflows.Status
	var installsBefore int
	var res updateResult
	env.RegisterDelayedCallback(func() {
		statusBefore = queryStatus(t, env)
		installsBefore = len(s.installCalls())
		decide(env, workflows.ApproveUpdate, "bob", &res)
	}, 10*time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, workflows.StatusAwaitingApproval, statusBefore)
	assert.Zero(t, installsBefore, "nothing installs before the approval")
	require.True(t, res.done)
	assert.NoError(t, res.rejected)
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted, workflows.StatusAwaitingApproval, workflows.StatusInstallCompleted}, statusEvents(d))
	require.NotNil(t, d.Approval)
	assert.Equal(t, "approved", d.Approval.Decision)
	assert.Equal(t, "bob", d.Approval.By)
	// Webhooks: on entering AWAITING_APPROVAL and on the final status.
	var statuses []workflows.Status
	for _, n := range ss.notified {
		statuses = append(statuses, n.Notification.Status)
		assert.Equal(t, "http://hooks.invalid/relman", n.URL)
	}
	assert.Equal(t, []workflows.Status{workflows.StatusAwaitingApproval, workflows.StatusInstallCompleted}, statuses)
	last := ss.notified[len(ss.notified)-1].Notification
	assert.Equal(t, testTX, last.Transaction)
	assert.Equal(t, "alice", last.Requester)
	assert.Equal(t, 5, last.Hosts.Installed)
	assert.Equal(t, 5, last.Hosts.Total)
}

func TestApprovalReject(t *testing.T) {
	s := newStand(approvalPlan(false))
	env, _ := newSafetyEnv(t, s)
	var res updateResult
	env.RegisterDelayedCallback(func() { decide(env, workflows.RejectUpdate, "carol", &res) }, time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "REJECTED", app.Type())
	assert.Equal(t, "rejected by carol: looks good", d.Reason)
	assert.Empty(t, s.installCalls())
	require.NotNil(t, d.Approval)
	assert.Equal(t, "rejected", d.Approval.Decision)
}

func TestApprovalFourEyes(t *testing.T) {
	s := newStand(approvalPlan(true))
	env, _ := newSafetyEnv(t, s)
	var self, other updateResult
	env.RegisterDelayedCallback(func() { decide(env, workflows.ApproveUpdate, "alice", &self) }, time.Minute)
	env.RegisterDelayedCallback(func() { decide(env, workflows.ApproveUpdate, "bob", &other) }, 2*time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Error(t, self.rejected, "the requester approved their own release")
	assert.Contains(t, self.rejected.Error(), "four eyes")
	assert.NoError(t, other.rejected)
	assert.Equal(t, "bob", queryDetail(t, env).Approval.By)
}

func TestApprovalTimeout(t *testing.T) {
	s := newStand(approvalPlan(false))
	env, _ := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "REJECTED", app.Type())
	assert.Contains(t, d.Reason, "nobody approved")
	assert.Contains(t, d.Reason, "1h0m0s")
	assert.Empty(t, s.installCalls())
}

// An approval on a release that does not wait for one is refused.
func TestApprovalNotAwaited(t *testing.T) {
	s := newStand(farmPlan())
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		time.Sleep(50 * time.Millisecond)
		return okInstall(host, in, 1), nil
	}
	env, _ := newSafetyEnv(t, s)
	var res updateResult
	env.RegisterDelayedCallback(func() { decide(env, workflows.ApproveUpdate, "bob", &res) }, time.Millisecond)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.NoError(t, env.GetWorkflowError())
	require.Error(t, res.rejected)
	assert.Contains(t, res.rejected.Error(), "not awaiting approval")
}

func TestNotifyFailureNeverFailsRelease(t *testing.T) {
	p := farmPlan()
	p.Webhooks = []string{"http://down.invalid/"}
	s := newStand(p)
	env, ss := newSafetyEnv(t, s)
	ss.notifyErr = errors.New("connection refused")
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Len(t, ss.notified, 5, "retried 5 times")
	assert.Equal(t, workflows.StatusInstallCompleted, queryStatus(t, env))
}

func TestRejectedPlanNotifies(t *testing.T) {
	s := newStand(workflows.Plan{})
	s.planErr = temporal.NewNonRetryableApplicationError("no installer", workflows.ErrRejected, nil,
		workflows.PlanRejection{Webhooks: []string{"http://hooks.invalid/"}})
	env, ss := newSafetyEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	_, d := failure(t, env)
	assert.Equal(t, "no installer", d.Reason)
	require.Len(t, ss.notified, 1)
	assert.Equal(t, workflows.StatusRejected, ss.notified[0].Notification.Status)
	assert.Equal(t, "no installer", ss.notified[0].Notification.Reason)
}

func lockPlan(mode string) workflows.Plan {
	p := farmPlan()
	p.Lock = mode
	return p
}

// captureSignals records the signals the workflow sends to other workflows.
type sentSignal struct {
	to, name string
	arg      any
}

func captureSignals(env *testsuite.TestWorkflowEnvironment) func() []sentSignal {
	var mu sync.Mutex
	var sent []sentSignal
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, id, _, name string, arg any) error {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, sentSignal{id, name, arg})
			return nil
		})
	return func() []sentSignal {
		mu.Lock()
		defer mu.Unlock()
		return append([]sentSignal(nil), sent...)
	}
}

// The second release waits while the first holds the lock, and installs
// once granted.
func TestLockWaitThenGranted(t *testing.T) {
	s := newStand(lockPlan(rollout.LockWait))
	env, ss := newSafetyEnv(t, s)
	var during workflows.Detail
	var installsDuring int
	env.RegisterDelayedCallback(func() {
		during = queryDetail(t, env)
		installsDuring = len(s.installCalls())
		env.SignalWorkflow(workflows.LockAnswerSignal, workflows.LockAnswer{Lock: workflows.LockID("", "test", "api"), Granted: true})
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.LockAnswerSignal, workflows.LockAnswer{Lock: workflows.LockID("", "test", "web"), Granted: true})
	}, 3*time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, workflows.StatusWaiting, during.Status)
	assert.Contains(t, during.Waiting, "lock-test-api held by transaction tx-first")
	assert.Zero(t, installsDuring, "installed while another release held the lock")
	// Locks asked in sorted order, then both released at the end.
	require.Len(t, ss.locks, 2)
	assert.Equal(t, "lock-test-api", ss.locks[0].Lock)
	assert.Equal(t, "lock-test-web", ss.locks[1].Lock)
	assert.Equal(t, testTX, ss.locks[0].Transaction)
	assert.ElementsMatch(t, []string{"lock-test-web", "lock-test-api"}, ss.releasedLocks(), "both given back")
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Contains(t, statusEvents(d), workflows.StatusWaiting)
}

// A free lock answers the release's update granted at once: the release
// never waits (no WAITING status, no signal back), installs, and gives the
// locks back by local activity, no signal from the workflow.
func TestLockGrantedAtOnce(t *testing.T) {
	s := newStand(lockPlan(rollout.LockWait))
	env, ss := newSafetyEnv(t, s)
	ss.grant = true
	sent := captureSignals(env)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.NotContains(t, statusEvents(d), workflows.StatusWaiting)
	require.Len(t, ss.locks, 2)
	assert.ElementsMatch(t, []string{"lock-test-web", "lock-test-api"}, ss.releasedLocks())
	assert.Empty(t, sent(), "the workflow itself signals no lock")
	assert.NotEmpty(t, s.installCalls())
}

// A release cancelled while it waits leaves the lock's queue.
func TestLockReleasedOnCancel(t *testing.T) {
	s := newStand(lockPlan(rollout.LockWait))
	env, ss := newSafetyEnv(t, s)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 2*time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	var ce *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &ce)
	assert.Equal(t, workflows.StatusCancelled, queryStatus(t, env))
	require.Len(t, ss.released, 1)
	assert.Equal(t, workflows.ReleaseLockInput{Lock: "lock-test-api", Transaction: testTX}, ss.released[0])
	assert.Empty(t, s.installCalls())
}

func TestLockRefuse(t *testing.T) {
	s := newStand(lockPlan(rollout.LockRefuse))
	env, ss := newSafetyEnv(t, s)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.LockAnswerSignal, workflows.LockAnswer{Lock: workflows.LockID("", "test", "api"), Refused: true, Holder: "tx-first"})
	}, time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "REJECTED", app.Type())
	assert.Contains(t, d.Reason, "tx-first")
	assert.True(t, ss.locks[0].Refuse)
	assert.Empty(t, s.installCalls())
}

// lockEnv runs the Lock workflow alone; answers it sends are recorded.
func TestLockWorkflowQueue(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.LockID("", "test", "web")})
	env.RegisterWorkflowWithOptions(workflows.Lock, workflow.RegisterOptions{Name: workflows.LockWorkflowName})
	var holderOpen sync.Map
	env.RegisterActivityWithOptions(func(_ context.Context, tx string) (bool, error) {
		_, open := holderOpen.Load(tx)
		return open, nil
	}, activity.RegisterOptions{Name: workflows.LockHolderOpenActivity})
	sent := captureSignals(env)
	req := func(tx string, refuse bool) {
		env.SignalWorkflow(workflows.LockRequestSignal, workflows.LockRequest{Lock: workflows.LockID("", "test", "web"), Env: "test", Target: "web", Transaction: tx, Refuse: refuse})
	}
	var states []workflows.LockState
	state := func() {
		v, err := env.QueryWorkflow(workflows.LockQuery)
		require.NoError(t, err)
		var st workflows.LockState
		require.NoError(t, v.Get(&st))
		states = append(states, st)
	}
	holderOpen.Store("tx-1", true)
	holderOpen.Store("tx-2", true)
	env.RegisterDelayedCallback(func() { req("tx-1", false) }, time.Second)
	env.RegisterDelayedCallback(func() { req("tx-2", false) }, 2*time.Second)
	env.RegisterDelayedCallback(func() { req("tx-3", true) }, 3*time.Second)
	env.RegisterDelayedCallback(state, 4*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.LockReleaseSignal, workflows.LockRelease{Transaction: "tx-1"})
	}, 5*time.Second)
	env.RegisterDelayedCallback(state, 6*time.Second)
	// tx-2 closes without releasing: the check frees the lock.
	env.RegisterDelayedCallback(func() { holderOpen.Delete("tx-2") }, 7*time.Second)
	env.RegisterDelayedCallback(state, 3*time.Minute)
	env.ExecuteWorkflow(workflows.LockWorkflowName, workflows.LockState{Env: "test", Target: "web", CheckEvery: time.Minute, IdleFor: time.Hour})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError(), "the lock ends once idle")

	require.Len(t, states, 3)
	assert.Equal(t, "tx-1", states[0].Holder)
	assert.Equal(t, []string{"tx-2"}, states[0].Queue)
	assert.Equal(t, "tx-2", states[1].Holder)
	assert.Empty(t, states[1].Queue)
	assert.Empty(t, states[2].Holder, "a closed holder keeps the lock")

	var answers []string
	for _, sg := range sent() {
		require.Equal(t, workflows.LockAnswerSignal, sg.name)
		a := sg.arg.(workflows.LockAnswer)
		kind := "waiting"
		switch {
		case a.Granted:
			kind = "granted"
		case a.Refused:
			kind = "refused by " + a.Holder
		}
		answers = append(answers, sg.to+" "+kind)
	}
	assert.Equal(t, []string{"tx-1 granted", "tx-2 waiting", "tx-3 refused by tx-1", "tx-2 granted"}, answers)
}

// A release asks the Lock workflow by update: the answer is the update's
// result (granted, waiting with its place, refused), and only a later
// grant comes as a signal. A request by update and one by signal share
// one queue.
func TestLockWorkflowAcquireByUpdate(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.LockID("", "test", "web")})
	env.RegisterWorkflowWithOptions(workflows.Lock, workflow.RegisterOptions{Name: workflows.LockWorkflowName})
	env.RegisterActivityWithOptions(func(context.Context, string) (bool, error) { return true, nil },
		activity.RegisterOptions{Name: workflows.LockHolderOpenActivity})
	sent := captureSignals(env)
	answers := map[string]workflows.LockAnswer{}
	var rejected error
	acquire := func(tx string, refuse bool) {
		env.UpdateWorkflow(workflows.LockAcquireUpdate, "acquire-"+tx, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { rejected = err },
			OnComplete: func(v any, err error) {
				require.NoError(t, err)
				answers[tx] = v.(workflows.LockAnswer)
			},
		}, workflows.LockRequest{Lock: workflows.LockID("", "test", "web"), Env: "test", Target: "web", Transaction: tx, Refuse: refuse})
	}
	var st workflows.LockState
	env.RegisterDelayedCallback(func() { acquire("tx-1", false) }, time.Second)
	env.RegisterDelayedCallback(func() { acquire("tx-2", false) }, 2*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.LockRequestSignal, workflows.LockRequest{Lock: workflows.LockID("", "test", "web"), Transaction: "tx-3"})
	}, 3*time.Second)
	env.RegisterDelayedCallback(func() { acquire("tx-4", true) }, 4*time.Second)
	env.RegisterDelayedCallback(func() { acquire("tx-1", false) }, 5*time.Second)
	env.RegisterDelayedCallback(func() { acquire("", false) }, 6*time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.LockQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
		env.SignalWorkflow(workflows.LockReleaseSignal, workflows.LockRelease{Transaction: "tx-1"})
	}, 7*time.Second)
	for i, tx := range []string{"tx-2", "tx-3"} {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(workflows.LockReleaseSignal, workflows.LockRelease{Transaction: tx})
		}, time.Duration(8+i)*time.Second)
	}
	env.ExecuteWorkflow(workflows.LockWorkflowName, workflows.LockState{Env: "test", Target: "web", CheckEvery: time.Hour, IdleFor: time.Hour})
	require.NoError(t, env.GetWorkflowError(), "the lock ends once idle")

	assert.True(t, answers["tx-1"].Granted, "asked again, the holder is told it holds the lock")
	assert.Equal(t, workflows.LockAnswer{Lock: "lock-test-web", Holder: "tx-1", Position: 1}, answers["tx-2"])
	assert.Equal(t, workflows.LockAnswer{Lock: "lock-test-web", Refused: true, Holder: "tx-1"}, answers["tx-4"])
	require.Error(t, rejected, "a request that names no transaction is refused")
	assert.Contains(t, rejected.Error(), "names the transaction")
	assert.Equal(t, "tx-1", st.Holder)
	assert.Equal(t, []string{"tx-2", "tx-3"}, st.Queue)
	var signalled []string
	for _, sg := range sent() {
		a := sg.arg.(workflows.LockAnswer)
		kind := "waiting"
		if a.Granted {
			kind = "granted"
		}
		signalled = append(signalled, sg.to+" "+kind)
	}
	assert.Equal(t, []string{"tx-3 waiting", "tx-2 granted", "tx-3 granted"}, signalled,
		"an update's answer is its result; only the request by signal and the later grants are signals")
}

// In an environment whose lock is supersede, a newer release takes the
// place of every one waiting: they are told who superseded them and leave;
// the holder keeps the lock.
func TestLockWorkflowSupersede(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.LockID("", "test", "web")})
	env.RegisterWorkflowWithOptions(workflows.Lock, workflow.RegisterOptions{Name: workflows.LockWorkflowName})
	env.RegisterActivityWithOptions(func(context.Context, string) (bool, error) { return true, nil },
		activity.RegisterOptions{Name: workflows.LockHolderOpenActivity})
	sent := captureSignals(env)
	req := func(tx string) {
		env.SignalWorkflow(workflows.LockRequestSignal, workflows.LockRequest{Lock: workflows.LockID("", "test", "web"), Env: "test", Target: "web", Transaction: tx, Supersede: true})
	}
	var st workflows.LockState
	for i, tx := range []string{"tx-1", "tx-2", "tx-3", "tx-4"} {
		env.RegisterDelayedCallback(func() { req(tx) }, time.Duration(i+1)*time.Second)
	}
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.LockQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
		for _, tx := range []string{"tx-1", "tx-4"} {
			env.SignalWorkflow(workflows.LockReleaseSignal, workflows.LockRelease{Transaction: tx})
		}
	}, 10*time.Second)
	env.ExecuteWorkflow(workflows.LockWorkflowName, workflows.LockState{Env: "test", Target: "web", CheckEvery: time.Hour, IdleFor: time.Hour})
	require.NoError(t, env.GetWorkflowError(), "the lock ends once idle")
	assert.Equal(t, "tx-1", st.Holder, "the holder keeps the lock")
	assert.Equal(t, []string{"tx-4"}, st.Queue, "only the newest waits")
	// What each release was told, in order. Across releases the order is
	// not fixed: a superseded release is told without waiting for the
	// delivery (lock-supersede-async), so its answer and the newer
	// release's "waiting" go out together.
	answers := map[string][]string{}
	for _, sg := range sent() {
		a := sg.arg.(workflows.LockAnswer)
		kind := "waiting"
		switch {
		case a.Granted:
			kind = "granted"
		case a.SupersededBy != "":
			kind = "superseded by " + a.SupersededBy
		}
		answers[sg.to] = append(answers[sg.to], kind)
	}
	assert.Equal(t, map[string][]string{
		"tx-1": {"granted"},
		"tx-2": {"waiting", "superseded by tx-3"},
		"tx-3": {"waiting", "superseded by tx-4"},
		"tx-4": {"waiting", "granted"},
	}, answers)
}

// A release told it was superseded ends SUPERSEDED naming the newer one,
// installs nothing and leaves the lock's queue.
func TestReleaseSuperseded(t *testing.T) {
	s := newStand(lockPlan(rollout.LockSupersede))
	env, ss := newSafetyEnv(t, s)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.LockAnswerSignal, workflows.LockAnswer{Lock: workflows.LockID("", "test", "api"), Holder: "tx-first", SupersededBy: "tx-newer"})
	}, 2*time.Minute)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, string(workflows.StatusSuperseded), app.Type())
	assert.Equal(t, workflows.StatusSuperseded, d.Status)
	assert.Contains(t, d.Reason, "superseded by transaction tx-newer")
	assert.True(t, ss.locks[0].Supersede)
	assert.Empty(t, s.installCalls())
	assert.Equal(t, []string{"lock-test-api"}, ss.releasedLocks(), "it leaves the queue")
	assert.True(t, workflows.StatusSuperseded.Final(workflows.ActionInstall))
}
