package workflows_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/workflows"
)

func newShardEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.RegistryShardID(workflows.DefaultRegistryID, 3), TaskQueue: workflows.DefaultManagerQueue})
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(workflows.RegistryShard, workflow.RegisterOptions{Name: workflows.RegistryShardWorkflowName})
	return env
}

func renew(env *testsuite.TestWorkflowEnvironment, r workflows.Registration) {
	env.SignalWorkflow(workflows.RegistrySignalName, workflows.RegistrySignal{Renew: &r})
}

func deregisterSignal(env *testsuite.TestWorkflowEnvironment, role workflows.Role, id string) {
	env.SignalWorkflow(workflows.RegistrySignalName, workflows.RegistrySignal{Deregister: &workflows.DeregisterRequest{Role: role, ID: id}})
}

// runShard starts the shard with state and cancels it at t0+end.
func runShard(t *testing.T, env *testsuite.TestWorkflowEnvironment, state workflows.RegistryShardState, end time.Duration) {
	t.Helper()
	at(env, end, func() { env.CancelWorkflow() })
	env.ExecuteWorkflow(workflows.RegistryShardWorkflowName, state)
	require.True(t, env.IsWorkflowCompleted())
	var ce *temporal.CanceledError
	require.True(t, errors.As(env.GetWorkflowError(), &ce), "shard ended with %v, want cancellation", env.GetWorkflowError())
}

func TestRegistryShardOfIsStableAndSpread(t *testing.T) {
	// The shard of an id is part of the protocol between roles and
	// managers of different versions: it must never change.
	assert.Equal(t, "relman-registry-shard-07", workflows.RegistryShardID(workflows.DefaultRegistryID, 7))
	for id, shard := range map[string]int{"host-a": workflows.RegistryShardOf("host-a"), "fleet-0001": workflows.RegistryShardOf("fleet-0001")} {
		assert.Equal(t, shard, workflows.RegistryShardOf(id))
		assert.Less(t, shard, workflows.RegistryShards)
	}
	per := make([]int, workflows.RegistryShards)
	for i := range 3000 {
		per[workflows.RegistryShardOf(fmt.Sprintf("fleet-%04d", i))]++
	}
	for k, n := range per {
		// 3,000 hosts over 16 shards: 187.5 each on average.
		assert.InDelta(t, 187, n, 60, "shard %d holds %d of 3,000 hosts", k, n)
	}
}

func TestRegistryShardRegisterRenewExpire(t *testing.T) {
	env := newShardEnv(t)
	var a *outcome
	at(env, time.Second, func() {
		a = register(t, env, installer("host-a", 10*time.Second))
		register(t, env, installer("host-b", 10*time.Second))
	})
	// host-b renews by signal at 6s (expires at 16s); host-a never does.
	at(env, 6*time.Second, func() { renew(env, installer("host-b", 10*time.Second)) })
	// A renewal of a lease the shard does not hold registers it (a lease
	// lost while no manager ran comes back with the next renewal).
	at(env, 7*time.Second, func() { renew(env, builder("b1", time.Minute)) })
	atSeven := snapshot(t, env, 7*time.Second+time.Millisecond)
	atTwelve := snapshot(t, env, 12*time.Second)
	atSeventeen := snapshot(t, env, 17*time.Second)
	runShard(t, env, workflows.RegistryShardState{}, 30*time.Second)

	require.NotNil(t, a)
	assert.True(t, a.completed)
	require.NoError(t, a.err)
	assert.True(t, t0.Add(11*time.Second).Equal(a.lease.Expires))
	assert.Equal(t, []string{"builder/b1", "installer/host-a", "installer/host-b"}, keys(*atSeven))
	for _, l := range *atSeven {
		if l.ID == "host-b" {
			assert.True(t, t0.Add(time.Second).Equal(l.Registered), "a renewal changed Registered to %s", l.Registered)
			assert.True(t, t0.Add(6*time.Second).Equal(l.Renewed))
			assert.True(t, t0.Add(16*time.Second).Equal(l.Expires))
		}
	}
	assert.Equal(t, []string{"builder/b1", "installer/host-b"}, keys(*atTwelve), "host-a was not renewed")
	assert.Equal(t, []string{"builder/b1"}, keys(*atSeventeen))
}

// A host that registers again with other advertisements keeps the newest,
// by update and by renewal alike.
func TestRegistryShardNewestAdvertisementWins(t *testing.T) {
	env := newShardEnv(t)
	at(env, time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	at(env, 2*time.Second, func() {
		r := installer("host-a", time.Minute)
		r.Targets = map[string][]string{"prod": {"web"}}
		register(t, env, r)
	})
	at(env, 3*time.Second, func() {
		r := installer("host-a", time.Minute)
		r.Targets = map[string][]string{"qa": {"api"}}
		renew(env, r)
	})
	afterUpdate := snapshot(t, env, 2500*time.Millisecond)
	afterRenewal := snapshot(t, env, 3500*time.Millisecond)
	runShard(t, env, workflows.RegistryShardState{}, 10*time.Second)

	require.Len(t, *afterUpdate, 1)
	assert.Equal(t, map[string][]string{"prod": {"web"}}, (*afterUpdate)[0].Targets)
	require.Len(t, *afterRenewal, 1)
	assert.Equal(t, map[string][]string{"qa": {"api"}}, (*afterRenewal)[0].Targets)
	assert.True(t, t0.Add(time.Second).Equal((*afterRenewal)[0].Registered))
}

// An id another role holds is refused with a message that says what to do;
// a renewal that would clash changes nothing.
func TestRegistryShardRefusesAnIDOfAnotherRole(t *testing.T) {
	env := newShardEnv(t)
	at(env, time.Second, func() { register(t, env, builder("web-1", time.Minute)) })
	var clash *outcome
	at(env, 2*time.Second, func() {
		clash = register(t, env, installer("web-1", time.Minute))
		renew(env, installer("web-1", time.Minute))
	})
	var afterExpiry *outcome
	// Once the builder's lease is gone, the id is free.
	at(env, 62*time.Second, func() { afterExpiry = register(t, env, installer("web-1", time.Minute)) })
	after := snapshot(t, env, 3*time.Second)
	late := snapshot(t, env, 63*time.Second)
	runShard(t, env, workflows.RegistryShardState{}, 70*time.Second)

	require.NotNil(t, clash)
	assert.True(t, clash.rejected)
	assert.False(t, clash.accepted)
	require.Error(t, clash.err)
	assert.Contains(t, clash.err.Error(), `installer id "web-1" is taken: a builder registered under it`)
	assert.Contains(t, clash.err.Error(), "give one of them another id")
	assert.Equal(t, []string{"builder/web-1"}, keys(*after))
	require.NotNil(t, afterExpiry)
	assert.NoError(t, afterExpiry.err)
	assert.Equal(t, []string{"installer/web-1"}, keys(*late))
}

func TestRegistryShardValidatorAndCapacity(t *testing.T) {
	full := workflows.RegistryShardState{Leases: map[string]workflows.Lease{}}
	for i := range 2000 {
		r := installer(fmt.Sprintf("h%04d", i), time.Hour)
		full.Leases[r.Key()] = workflows.Lease{Registration: r, Registered: t0, Renewed: t0, Expires: t0.Add(time.Hour)}
	}
	badRole := installer("host-x", time.Minute)
	badRole.Role = "watcher"
	cases := map[string]struct {
		state workflows.RegistryShardState
		reg   workflows.Registration
		want  string
	}{
		"empty id":     {reg: installer("", time.Minute), want: "no id"},
		"bad role":     {reg: badRole, want: "watcher"},
		"short lease":  {reg: installer("host-s", 500*time.Millisecond), want: "shorter than one second"},
		"shard full":   {state: full, reg: installer("one-more", time.Hour), want: "holds 2000 registrations, its limit"},
		"full renewed": {state: full, reg: installer("h0001", time.Hour)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			env := newShardEnv(t)
			var o *outcome
			at(env, time.Second, func() { o = register(t, env, c.reg) })
			runShard(t, env, c.state, 2*time.Second)
			require.NotNil(t, o)
			if c.want == "" {
				assert.NoError(t, o.err)
				return
			}
			assert.True(t, o.rejected)
			require.Error(t, o.err)
			assert.Contains(t, o.err.Error(), c.want)
		})
	}
}

func TestRegistryShardDeregister(t *testing.T) {
	env := newShardEnv(t)
	at(env, time.Second, func() {
		register(t, env, installer("host-a", time.Hour))
		register(t, env, installer("host-b", time.Hour))
	})
	// A renewal sent before the deregistration does not bring it back:
	// one signal name keeps them in order.
	at(env, 2*time.Second, func() {
		renew(env, installer("host-a", time.Hour))
		deregisterSignal(env, workflows.RoleInstaller, "host-a")
		deregisterSignal(env, workflows.RoleInstaller, "nobody")
	})
	after := snapshot(t, env, 3*time.Second)
	runShard(t, env, workflows.RegistryShardState{}, 10*time.Second)
	assert.Equal(t, []string{"installer/host-b"}, keys(*after))
}

// A deregistration that names an earlier run of the role (its process has
// started again meanwhile) leaves the new registration alone, whichever
// arrives first; one that names this run, or none, removes it.
func TestRegistryShardDeregisterOfAnEarlierRunIgnored(t *testing.T) {
	withInstance := func(r workflows.Registration, instance string) workflows.Registration {
		r.Instance = instance
		return r
	}
	env := newShardEnv(t)
	at(env, time.Second, func() {
		register(t, env, withInstance(installer("host-a", time.Hour), "run-2"))
		register(t, env, withInstance(installer("host-b", time.Hour), "run-2"))
		register(t, env, withInstance(installer("host-c", time.Hour), "run-2"))
	})
	at(env, 2*time.Second, func() {
		env.SignalWorkflow(workflows.RegistrySignalName, workflows.RegistrySignal{Deregister: &workflows.DeregisterRequest{Role: workflows.RoleInstaller, ID: "host-a", Instance: "run-1"}})
		env.SignalWorkflow(workflows.RegistrySignalName, workflows.RegistrySignal{Deregister: &workflows.DeregisterRequest{Role: workflows.RoleInstaller, ID: "host-b", Instance: "run-2"}})
		env.SignalWorkflow(workflows.RegistrySignalName, workflows.RegistrySignal{Deregister: &workflows.DeregisterRequest{Role: workflows.RoleInstaller, ID: "host-c"}})
	})
	after := snapshot(t, env, 3*time.Second)
	runShard(t, env, workflows.RegistryShardState{}, 10*time.Second)
	assert.Equal(t, []string{"installer/host-a"}, keys(*after))
	require.Len(t, *after, 1)
	assert.Equal(t, "run-2", (*after)[0].Instance)
}

// shardCAN returns the state a shard continued as new with.
func shardCAN(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.RegistryShardState {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "shard ended with %v, want continue-as-new", env.GetWorkflowError())
	assert.Equal(t, workflows.RegistryShardWorkflowName, can.WorkflowType.Name)
	var st workflows.RegistryShardState
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &st))
	return st
}

// The shard continues as new past MaxHistory with every lease and its own
// limit. (Signals delivered with the workflow task that continues as new
// travel in Carried; the test environment drops a signal to a workflow that
// has continued as new instead of failing that task as the server does, so
// e2e's TestRegistryShardKeepsEveryRegistrationAcrossContinueAsNew covers
// that path against a real server.)
func TestRegistryShardContinueAsNewKeepsLeases(t *testing.T) {
	env := newShardEnv(t)
	at(env, time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	at(env, 2*time.Second, func() {
		env.SetCurrentHistoryLength(6000)
		renew(env, installer("host-b", time.Minute))
	})
	env.ExecuteWorkflow(workflows.RegistryShardWorkflowName, workflows.RegistryShardState{MaxHistory: 5000})
	st := shardCAN(t, env)
	assert.Equal(t, 5000, st.MaxHistory, "the shard's own limit travels on")
	held := []string{}
	for k := range st.Leases {
		held = append(held, k)
	}
	for _, s := range st.Carried {
		require.NotNil(t, s.Renew)
		held = append(held, s.Renew.Key())
	}
	assert.ElementsMatch(t, []string{"installer/host-a", "installer/host-b"}, held)
}

// A run applies the signals the run before carried over before anything
// else, in order.
func TestRegistryShardAppliesCarriedSignals(t *testing.T) {
	env := newShardEnv(t)
	a, b := installer("host-a", time.Minute), installer("host-b", time.Minute)
	st := workflows.RegistryShardState{
		Leases: map[string]workflows.Lease{a.Key(): {Registration: a, Registered: t0.Add(-time.Minute), Renewed: t0.Add(-30 * time.Second), Expires: t0.Add(30 * time.Second)}},
		Carried: []workflows.RegistrySignal{
			{Renew: &b},
			{Deregister: &workflows.DeregisterRequest{Role: workflows.RoleInstaller, ID: "host-a"}},
		},
	}
	got := snapshot(t, env, time.Second)
	runShard(t, env, st, 2*time.Second)
	assert.Equal(t, []string{"installer/host-b"}, keys(*got))
}

func TestRegistryShardContinueAsNewWhenSuggested(t *testing.T) {
	env := newShardEnv(t)
	at(env, time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	at(env, 2*time.Second, func() {
		env.SetContinueAsNewSuggested(true)
		renew(env, installer("host-a", time.Minute))
	})
	env.ExecuteWorkflow(workflows.RegistryShardWorkflowName, workflows.RegistryShardState{})
	st := shardCAN(t, env)
	require.Len(t, st.Leases, 1)
	l := st.Leases["installer/host-a"]
	assert.True(t, t0.Add(time.Second).Equal(l.Registered))
	assert.True(t, t0.Add(2*time.Second).Equal(l.Renewed))
}
