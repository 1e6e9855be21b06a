package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// fleetPlan has targets web and api on n hosts h0000...
func fleetPlan(n int, r rollout.Policy) workflows.Plan {
	var hosts []string
	for i := range n {
		hosts = append(hosts, fmt.Sprintf("h%04d", i))
	}
	return workflows.Plan{
		Targets: []string{"web", "api"},
		Hosts:   map[string][]string{"web": hosts, "api": hosts},
		Rollout: r,
	}
}

// newFleetEnv is a release env that also runs HostFanOut children and
// counts them.
func newFleetEnv(t *testing.T, s *stand) (*testsuite.TestWorkflowEnvironment, *safetyStand, *children) {
	env, ss := newSafetyEnv(t, s)
	env.SetTestTimeout(2 * time.Minute)
	env.RegisterWorkflowWithOptions(workflows.HostFanOut, workflow.RegisterOptions{Name: workflows.HostFanOutWorkflowName})
	ch := &children{}
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		// The closed-transaction record is a child too, not a fan-out.
		if info.WorkflowType.Name != workflows.HostFanOutWorkflowName {
			return
		}
		var in workflows.HostFanOutInput
		require.NoError(t, args.Get(&in))
		ch.mu.Lock()
		defer ch.mu.Unlock()
		ch.ids = append(ch.ids, info.WorkflowExecution.ID)
		ch.sizes = append(ch.sizes, len(in.Calls))
	})
	return env, ss, ch
}

type children struct {
	mu    sync.Mutex
	ids   []string
	sizes []int
}

// allInstalls reads every install of a finished release through the paged
// query, as transaction.Get does.
func allInstalls(t *testing.T, env *testsuite.TestWorkflowEnvironment, d workflows.Detail) []workflows.InstallRecord {
	t.Helper()
	if d.InstallPages == nil {
		return d.Installs
	}
	var out []workflows.InstallRecord
	for off := 0; off < d.InstallPages.Total; off += d.InstallPages.PageSize {
		v, err := env.QueryWorkflow(workflows.DetailInstallsQuery, off, d.InstallPages.PageSize)
		require.NoError(t, err)
		var p workflows.InstallsPage
		require.NoError(t, v.Get(&p))
		require.Equal(t, off, p.Offset)
		out = append(out, p.Installs...)
	}
	return out
}

// A fan-out of more than 200 calls goes through HostFanOut children of at
// most 200 each; every host installs, and the detail of 600 installs pages.
func TestFanOutThroughChildren(t *testing.T) {
	s := newStand(fleetPlan(300, rollout.Policy{}))
	env, _, ch := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))

	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Equal(t, []int{200, 200, 200}, ch.sizes)
	assert.ElementsMatch(t, []string{testTX + "-install-1", testTX + "-install-2", testTX + "-install-3"}, ch.ids)
	assert.Len(t, s.installCalls(), 600)
	assert.Empty(t, d.Installs, "600 installs are read a page at a time")
	require.NotNil(t, d.InstallPages)
	assert.Equal(t, workflows.InstallPages{Total: 600, PageSize: workflows.MaxDetailInstalls,
		Summary: workflows.HostsSummary{Total: 600, Installed: 600}}, *d.InstallPages)
	assert.Equal(t, d.InstallPages, queryDetail(t, env).InstallPages)
	all := allInstalls(t, env, d)
	require.Len(t, all, 600)
	for _, r := range all {
		assert.Equal(t, workflows.InstallInstalled, r.State, r.Host)
		assert.Equal(t, "/srv/"+r.Target, r.Path)
		assert.EqualValues(t, 1, r.Attempts)
	}
	for _, e := range d.Events {
		assert.NotContains(t, e.Detail, "installed web on", "no event per host in a paged detail")
	}
	assert.Equal(t, "installed on 300 host(s)", d.Events[len(d.Events)-1].Detail)
}

// 200 calls or fewer schedule their activities from the release itself, as
// releases always did.
func TestFanOutDirectUpTo200Calls(t *testing.T) {
	s := newStand(fleetPlan(100, rollout.Policy{}))
	env, _, ch := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.NoError(t, env.GetWorkflowError())
	d := queryDetail(t, env)
	assert.Empty(t, ch.ids)
	assert.Len(t, d.Installs, 200)
	assert.Nil(t, d.InstallPages)
}

// Failures that come back through children read as they would from the
// activity itself: message, attempts, non-retryable type, and a reason that
// names twenty of them and counts the rest.
func TestFanOutChildFailuresAndAttempts(t *testing.T) {
	s := newStand(fleetPlan(150, rollout.Policy{}))
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		if in.Target == "api" && strings.HasSuffix(host, "7") {
			return workflows.InstallResult{}, temporal.NewNonRetryableApplicationError("checksum mismatch on "+host, workflows.ErrChecksum, nil,
				workflows.InstallFailure{Host: host, Attempt: 2})
		}
		return okInstall(host, in, activity.GetInfo(ctx).Attempt), nil
	}
	env, _, ch := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Len(t, ch.ids, 2)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	assert.Contains(t, d.Reason, "install failed on 15 of 300 host installs: h0007/api: checksum mismatch on h0007")
	assert.NotContains(t, d.Reason, "... and", "15 failures are all named")
	all := allInstalls(t, env, d)
	require.Len(t, all, 300)
	failed := 0
	for _, r := range all {
		if r.State == workflows.InstallFailedS {
			failed++
			assert.Equal(t, "checksum mismatch on "+r.Host, r.Error)
			assert.EqualValues(t, 2, r.Attempts, "the attempts come back from the child")
		}
	}
	assert.Equal(t, 15, failed)
}

func TestFanOutReasonCountsPastTwenty(t *testing.T) {
	s := newStand(fleetPlan(150, rollout.Policy{}))
	s.install = failOn(func() []string {
		var hs []string
		for i := range 30 {
			hs = append(hs, fmt.Sprintf("h%04d", i))
		}
		return hs
	}()...)
	env, _, _ := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	_, d := failure(t, env)
	assert.Contains(t, d.Reason, "install failed on 60 of 300 host installs: ")
	assert.Contains(t, d.Reason, "; ... and 40 more")
	assert.Less(t, len(d.Reason), 2000)
}

// A rolling release to many hosts sends every batch, however small,
// through a child; unreachable hosts are skipped under unreachable: skip;
// max_failures counts failed hosts across children.
func TestFanOutRollingThroughChildren(t *testing.T) {
	s := newStand(fleetPlan(120, rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "25%", MaxFailures: "2", Unreachable: rollout.UnreachableSkip}))
	fail := failOn("h0003", "h0100")
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		if host == "h0050" {
			return unreachableOn("h0050")(ctx, host, in)
		}
		return fail(ctx, host, in)
	}
	env, _, ch := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError(), "2 failed hosts are within max_failures 2")
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	assert.Len(t, d.Batches, 4)
	assert.Equal(t, []int{60, 60, 60, 60}, ch.sizes, "one child per batch of 30 hosts x 2 targets")
	assert.Contains(t, ch.ids, testTX+"-install-4-1")
	last := d.Events[len(d.Events)-1].Detail
	assert.Contains(t, last, "installed on 118 host(s) in 4 batch(es)")
	assert.Contains(t, last, "2 host(s) failed within max_failures 2")
	assert.Contains(t, last, "skipped unreachable: h0050/web, h0050/api")
	all := allInstalls(t, env, d)
	states := map[workflows.InstallState]int{}
	for _, r := range all {
		states[r.State]++
	}
	assert.Equal(t, map[workflows.InstallState]int{workflows.InstallInstalled: 234, workflows.InstallFailedS: 4, workflows.InstallSkipped: 2}, states)
}

// A rolling release that stops rolls the hosts it did back through
// children too, and says so in a reason of bounded size.
func TestFanOutAutoRollbackThroughChildren(t *testing.T) {
	s := newStand(fleetPlan(400, rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "75%", AutoRollback: true}))
	s.install = failOn("h0350")
	env, ss, ch := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	assert.Contains(t, d.Reason, "rollout stopped after batch 2 of 2")
	assert.Contains(t, d.Reason, "rolled back 798 of 798 host install(s)")
	assert.Len(t, ss.rollbacks, 798)
	var rollbackChildren int
	for _, id := range ch.ids {
		if strings.HasPrefix(id, testTX+"-rollback-") {
			rollbackChildren++
		}
	}
	assert.Equal(t, 4, rollbackChildren)
	assert.Len(t, d.Rollbacks, 798)
	all := allInstalls(t, env, d)
	rolled := 0
	for _, r := range all {
		if r.RolledBack {
			rolled++
		}
	}
	assert.Equal(t, 798, rolled)
	require.NotNil(t, d.InstallPages)
	assert.Equal(t, 798, d.InstallPages.Summary.RolledBack)
}

// Cancelling a release cancels its children and their installs; the
// detail says which were cancelled.
func TestFanOutCancelThroughChildren(t *testing.T) {
	s := newStand(fleetPlan(150, rollout.Policy{}))
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		if host != "h0149" {
			return okInstall(host, in, activity.GetInfo(ctx).Attempt), nil
		}
		for {
			activity.RecordHeartbeat(ctx, "installing")
			select {
			case <-ctx.Done():
				return workflows.InstallResult{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	env, _, _ := newFleetEnv(t, s)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, time.Second)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	var ce *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &ce)
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusCancelled, d.Status)
	all := allInstalls(t, env, d)
	for _, r := range all {
		if r.Host == "h0149" {
			assert.Equal(t, workflows.InstallCancelled, r.State, r.Target)
		}
	}
}

func TestDetailInstallsQueryPages(t *testing.T) {
	s := newStand(fleetPlan(300, rollout.Policy{}))
	env, _, _ := newFleetEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.NoError(t, env.GetWorkflowError())
	cases := map[string]struct {
		offset, limit int
		n             int
		err           string
	}{
		"first page":       {offset: 0, limit: 500, n: 500},
		"last page":        {offset: 500, limit: 500, n: 100},
		"limit capped":     {offset: 0, limit: 10000, n: workflows.MaxDetailInstalls},
		"past the end":     {offset: 900, limit: 10, n: 0},
		"negative offset":  {offset: -1, limit: 10, err: "offset of 0 or more"},
		"zero limit":       {offset: 0, limit: 0, err: "limit of 1 or more"},
		"small page":       {offset: 10, limit: 3, n: 3},
		"page at boundary": {offset: 599, limit: 5, n: 1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v, err := env.QueryWorkflow(workflows.DetailInstallsQuery, c.offset, c.limit)
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			var p workflows.InstallsPage
			require.NoError(t, v.Get(&p))
			assert.Equal(t, 600, p.Total)
			assert.Len(t, p.Installs, c.n)
		})
	}
}

func TestPlanCheckLimits(t *testing.T) {
	hosts := func(n int) []string {
		var hs []string
		for i := range n {
			hs = append(hs, fmt.Sprintf("h%05d", i))
		}
		return hs
	}
	cases := map[string]struct {
		plan workflows.Plan
		want string
	}{
		"1,000 hosts x 3 targets": {plan: workflows.Plan{Targets: []string{"a", "b", "c"}, Hosts: map[string][]string{"a": hosts(1000), "b": hosts(1000), "c": hosts(1000)}}},
		"at the install limit":    {plan: workflows.Plan{Targets: []string{"a", "b"}, Hosts: map[string][]string{"a": hosts(5000), "b": hosts(5000)}}},
		"past the install limit": {plan: workflows.Plan{Targets: []string{"a", "b"}, Hosts: map[string][]string{"a": hosts(5000), "b": hosts(5001)}},
			want: "this release would make 10001 (host, named target) installs and one release holds at most 10000 (MaxReleaseInstalls); split the environment's hosts into several environments"},
		"500 batches": {plan: workflows.Plan{Targets: []string{"a"}, Hosts: map[string][]string{"a": hosts(1000)},
			Rollout: rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "2"}}},
		"too many batches": {plan: workflows.Plan{Targets: []string{"a"}, Hosts: map[string][]string{"a": hosts(1000)},
			Rollout: rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "1"}},
			want: "a rolling release goes through at most 500 batches (MaxRolloutBatches) and 1000 hosts in batches of 1 make 1000; set a larger batch: at least 2 hosts, or a share of 1% or more"},
		"a share is never too many": {plan: workflows.Plan{Targets: []string{"a"}, Hosts: map[string][]string{"a": hosts(9000)},
			Rollout: rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "1%"}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.plan.CheckLimits()
			if c.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, c.want, err.Error())
		})
	}
}

// Rollback and Where go through children too once they talk to more than
// 200 hosts, with every host's answer (or error) where it was before.
func TestRollbackAndWhereThroughChildren(t *testing.T) {
	var hosts []string
	for i := range 250 {
		hosts = append(hosts, fmt.Sprintf("h%04d", i))
	}
	newEnv := func() (*testsuite.TestWorkflowEnvironment, *children) {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.SetTestTimeout(time.Minute)
		env.RegisterWorkflowWithOptions(workflows.Rollback, workflow.RegisterOptions{Name: workflows.RollbackWorkflowName})
		env.RegisterWorkflowWithOptions(workflows.Where, workflow.RegisterOptions{Name: workflows.WhereWorkflowName})
		env.RegisterWorkflowWithOptions(workflows.HostFanOut, workflow.RegisterOptions{Name: workflows.HostFanOutWorkflowName})
		env.RegisterWorkflowWithOptions(workflows.RecordTransaction, workflow.RegisterOptions{Name: workflows.RecordTransactionWorkflowName})
		env.RegisterActivityWithOptions(recordNothing, activity.RegisterOptions{Name: workflows.RecordActivity})
		env.RegisterActivityWithOptions(startNoRecorder, activity.RegisterOptions{Name: workflows.StartRecorderActivity})
		env.RegisterActivityWithOptions(func(context.Context, workflows.HostsInput) (workflows.HostsResult, error) {
			return workflows.HostsResult{Targets: []string{"app"}, Hosts: map[string][]string{"app": hosts}}, nil
		}, activity.RegisterOptions{Name: workflows.HostsActivity})
		env.RegisterActivityWithOptions(func(_ context.Context, in workflows.AuthorizeInput) (string, error) { return in.Claimed, nil },
			activity.RegisterOptions{Name: workflows.AuthorizeActivity})
		env.RegisterActivityWithOptions(func(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
			h := queueHost(activity.GetInfo(ctx).TaskQueue)
			if h == "h0100" {
				return workflows.RollbackHostResult{}, temporal.NewNonRetryableApplicationError("no release before tx-3 on "+h, workflows.ErrReleaseNotFound, nil)
			}
			return workflows.RollbackHostResult{Host: h, From: "tx-3", To: "tx-2", Path: "/srv/" + h, Attempt: 1}, nil
		}, activity.RegisterOptions{Name: workflows.RollbackActivity})
		env.RegisterActivityWithOptions(func(ctx context.Context, in workflows.WhereHostInput) (map[string]workflows.LiveInstall, error) {
			h := queueHost(activity.GetInfo(ctx).TaskQueue)
			if h == "h0200" {
				return nil, temporal.NewNonRetryableApplicationError("host h0200: disk on fire", "Boom", nil)
			}
			return map[string]workflows.LiveInstall{"app": {Target: "app", Transaction: "tx-" + h}}, nil
		}, activity.RegisterOptions{Name: workflows.WhereActivity})
		ch := &children{}
		env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
			if info.WorkflowType.Name != workflows.HostFanOutWorkflowName {
				return
			}
			ch.mu.Lock()
			defer ch.mu.Unlock()
			ch.ids = append(ch.ids, info.WorkflowExecution.ID)
		})
		return env, ch
	}

	t.Run("rollback", func(t *testing.T) {
		env, ch := newEnv()
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "rb-1"})
		env.ExecuteWorkflow(workflows.RollbackWorkflowName, workflows.RollbackInput{Request: workflows.Request{Project: "site", Env: "test", Requester: "alice"}})
		app, d := failure(t, env)
		assert.Equal(t, string(workflows.StatusRollbackFailed), app.Type())
		assert.ElementsMatch(t, []string{"rb-1-rollback-1", "rb-1-rollback-2"}, ch.ids)
		assert.Equal(t, "rollback failed on 1 of 250 host targets: h0100/app: no release before tx-3 on h0100", d.Reason)
		require.Len(t, d.Installs, 250)
		for _, in := range d.Installs {
			if in.Host == "h0100" {
				assert.Equal(t, workflows.InstallFailedS, in.State)
				continue
			}
			assert.Equal(t, workflows.InstallInstalled, in.State, in.Host)
			assert.Equal(t, "/srv/"+in.Host, in.Path)
		}
	})
	t.Run("where", func(t *testing.T) {
		env, ch := newEnv()
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "where-1"})
		env.ExecuteWorkflow(workflows.WhereWorkflowName, workflows.WhereInput{Project: "site", Env: "test"})
		require.True(t, env.IsWorkflowCompleted())
		require.NoError(t, env.GetWorkflowError())
		var res workflows.WhereResult
		require.NoError(t, env.GetWorkflowResult(&res))
		assert.ElementsMatch(t, []string{"where-1-where-1", "where-1-where-2"}, ch.ids)
		assert.Len(t, res.Hosts, 249)
		assert.Equal(t, "tx-h0007", res.Hosts["h0007"]["app"].Transaction)
		assert.Equal(t, map[string]string{"h0200": "host h0200: disk on fire"}, res.Errors)
	})
}

// queueHost is the host whose queue q is: the test env's manager queue is
// not the default one, so host queues carry it as a prefix.
func queueHost(q string) string {
	_, h, _ := strings.Cut(q, "relman-host-")
	return h
}
