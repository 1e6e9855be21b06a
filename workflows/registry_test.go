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

func newRegistryEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.DefaultRegistryID, TaskQueue: workflows.DefaultManagerQueue})
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(workflows.Registry, workflow.RegisterOptions{Name: workflows.RegistryWorkflowName})
	return env
}

// outcome is what one update call reported.
type outcome struct {
	accepted, rejected, completed bool
	err                           error
	lease                         workflows.Lease
}

func callbacks(t *testing.T, o *outcome) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept: func() { o.accepted = true },
		OnReject: func(err error) { o.rejected = true; o.err = err },
		OnComplete: func(v any, err error) {
			o.completed = true
			o.err = err
			switch v := v.(type) {
			case workflows.Lease:
				o.lease = v
			case converter.EncodedValue:
				if v != nil && v.HasValue() {
					assert.NoError(t, v.Get(&o.lease))
				}
			case nil:
			default:
				t.Errorf("update result of type %T", v)
			}
		},
	}
}

// register sends a register update now (call it inside a delayed callback).
func register(t *testing.T, env *testsuite.TestWorkflowEnvironment, r workflows.Registration) *outcome {
	o := &outcome{}
	env.UpdateWorkflow(workflows.RegisterUpdate, "", callbacks(t, o), r)
	return o
}

func deregister(t *testing.T, env *testsuite.TestWorkflowEnvironment, role workflows.Role, id string) *outcome {
	o := &outcome{}
	env.UpdateWorkflow(workflows.DeregisterUpdate, "", callbacks(t, o), workflows.DeregisterRequest{Role: role, ID: id})
	return o
}

// at runs fn when the registry's clock reads t0+d.
func at(env *testsuite.TestWorkflowEnvironment, d time.Duration, fn func()) {
	env.RegisterDelayedCallback(fn, d)
}

// snapshot records the registrations query at t0+d.
func snapshot(t *testing.T, env *testsuite.TestWorkflowEnvironment, d time.Duration) *[]workflows.Lease {
	out := &[]workflows.Lease{}
	at(env, d, func() {
		v, err := env.QueryWorkflow(workflows.RegistrationsQuery)
		if !assert.NoError(t, err) {
			return
		}
		assert.NoError(t, v.Get(out))
	})
	return out
}

func keys(ls []workflows.Lease) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Key())
	}
	return out
}

// runRegistry starts the registry with state and cancels it at t0+end.
func runRegistry(t *testing.T, env *testsuite.TestWorkflowEnvironment, state workflows.RegistryState, end time.Duration) {
	t.Helper()
	at(env, end, func() { env.CancelWorkflow() })
	env.ExecuteWorkflow(workflows.RegistryWorkflowName, state)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var ce *temporal.CanceledError
	require.True(t, errors.As(err, &ce), "registry ended with %v, want cancellation", err)
}

func installer(id string, lease time.Duration) workflows.Registration {
	return workflows.Registration{
		Role:    workflows.RoleInstaller,
		ID:      id,
		Targets: map[string][]string{"test": {"web", "api"}},
		Lease:   lease,
	}
}

func builder(id string, lease time.Duration) workflows.Registration {
	return workflows.Registration{Role: workflows.RoleBuilder, ID: id, Projects: []string{"template"}, Lease: lease}
}

func TestRegistryRegisterAndQuery(t *testing.T) {
	env := newRegistryEnv(t)
	var hb, ha, b1 *outcome
	at(env, time.Second, func() {
		hb = register(t, env, installer("host-b", time.Minute))
		ha = register(t, env, installer("host-a", 90*time.Second))
		b1 = register(t, env, builder("b1", 30*time.Second))
	})
	got := snapshot(t, env, 2*time.Second)
	runRegistry(t, env, workflows.RegistryState{}, 10*time.Second)

	now := t0.Add(time.Second)
	for _, o := range []*outcome{hb, ha, b1} {
		require.NotNil(t, o)
		assert.True(t, o.accepted)
		assert.True(t, o.completed)
		assert.False(t, o.rejected)
		assert.NoError(t, o.err)
	}
	assert.Equal(t, now.Add(time.Minute), hb.lease.Expires)
	assert.Equal(t, "installer/host-b", hb.lease.Key())

	require.Equal(t, []string{"builder/b1", "installer/host-a", "installer/host-b"}, keys(*got))
	want := []struct {
		reg   workflows.Registration
		lease time.Duration
	}{
		{builder("b1", 30*time.Second), 30 * time.Second},
		{installer("host-a", 90*time.Second), 90 * time.Second},
		{installer("host-b", time.Minute), time.Minute},
	}
	for i, w := range want {
		l := (*got)[i]
		assert.Equal(t, w.reg, l.Registration, l.Key())
		assert.True(t, now.Equal(l.Registered), "%s registered %s", l.Key(), l.Registered)
		assert.True(t, now.Equal(l.Renewed), "%s renewed %s", l.Key(), l.Renewed)
		assert.True(t, now.Add(w.lease).Equal(l.Expires), "%s expires %s, want %s", l.Key(), l.Expires, now.Add(w.lease))
	}
}

func TestRegistryRenewal(t *testing.T) {
	env := newRegistryEnv(t)
	at(env, time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	var renewed *outcome
	at(env, 31*time.Second, func() {
		r := installer("host-a", time.Minute)
		r.Targets = map[string][]string{"test": {"web"}} // what a host advertises may change on renewal
		renewed = register(t, env, r)
	})
	afterRenewal := snapshot(t, env, 32*time.Second)
	pastFirstExpiry := snapshot(t, env, 62*time.Second)
	pastRenewedExpiry := snapshot(t, env, 92*time.Second)
	runRegistry(t, env, workflows.RegistryState{}, 100*time.Second)

	require.NotNil(t, renewed)
	assert.NoError(t, renewed.err)
	require.Len(t, *afterRenewal, 1)
	l := (*afterRenewal)[0]
	assert.True(t, t0.Add(time.Second).Equal(l.Registered), "renewal changed Registered to %s", l.Registered)
	assert.True(t, t0.Add(31*time.Second).Equal(l.Renewed))
	assert.True(t, t0.Add(91*time.Second).Equal(l.Expires), "expires %s", l.Expires)
	assert.Equal(t, map[string][]string{"test": {"web"}}, l.Targets)
	assert.Equal(t, l, renewed.lease)

	assert.Equal(t, []string{"installer/host-a"}, keys(*pastFirstExpiry), "a renewed lease expired at its first expiry")
	assert.Empty(t, *pastRenewedExpiry, "the lease outlived its renewal")
}

func TestRegistryExpiry(t *testing.T) {
	env := newRegistryEnv(t)
	at(env, time.Second, func() {
		register(t, env, installer("host-a", 10*time.Second)) // not renewed: expires at 11s
		register(t, env, installer("host-b", 10*time.Second)) // renewed at 6s: expires at 16s
		register(t, env, builder("b1", 100*time.Second))      // the loop's timer waits for 101s
	})
	at(env, 6*time.Second, func() { register(t, env, installer("host-b", 10*time.Second)) })
	// A later registration with a shorter lease than the pending timer must
	// still expire on time.
	at(env, 20*time.Second, func() { register(t, env, installer("host-c", 5*time.Second)) })
	atTen := snapshot(t, env, 10*time.Second)
	atTwelve := snapshot(t, env, 12*time.Second)
	atSeventeen := snapshot(t, env, 17*time.Second)
	atTwentyFour := snapshot(t, env, 24*time.Second)
	atTwentySix := snapshot(t, env, 26*time.Second)
	runRegistry(t, env, workflows.RegistryState{}, 30*time.Second)

	assert.Equal(t, []string{"builder/b1", "installer/host-a", "installer/host-b"}, keys(*atTen))
	assert.Equal(t, []string{"builder/b1", "installer/host-b"}, keys(*atTwelve), "host-a was not renewed")
	assert.Equal(t, []string{"builder/b1"}, keys(*atSeventeen))
	assert.Equal(t, []string{"builder/b1", "installer/host-c"}, keys(*atTwentyFour))
	assert.Equal(t, []string{"builder/b1"}, keys(*atTwentySix), "host-c outlived its 5s lease")
}

func TestRegistryDeregister(t *testing.T) {
	env := newRegistryEnv(t)
	at(env, time.Second, func() {
		register(t, env, installer("host-a", time.Hour))
		register(t, env, installer("host-b", time.Hour))
		register(t, env, builder("host-a", time.Hour)) // same id, other role
	})
	var dereg, unknown *outcome
	at(env, 2*time.Second, func() {
		dereg = deregister(t, env, workflows.RoleInstaller, "host-a")
		unknown = deregister(t, env, workflows.RoleInstaller, "nobody")
	})
	before := snapshot(t, env, 1500*time.Millisecond)
	after := snapshot(t, env, 2*time.Second+time.Millisecond)
	runRegistry(t, env, workflows.RegistryState{}, 10*time.Second)

	require.NotNil(t, dereg)
	assert.True(t, dereg.completed)
	assert.NoError(t, dereg.err)
	assert.NoError(t, unknown.err)
	assert.Equal(t, []string{"builder/host-a", "installer/host-a", "installer/host-b"}, keys(*before))
	assert.Equal(t, []string{"builder/host-a", "installer/host-b"}, keys(*after))
}

func TestRegistryValidator(t *testing.T) {
	env := newRegistryEnv(t)
	var good *outcome
	at(env, time.Second, func() { good = register(t, env, installer("host-a", time.Minute)) })
	bad := map[string]workflows.Registration{}
	outcomes := map[string]*outcome{}
	noID := installer("", time.Minute)
	badRole := installer("host-x", time.Minute)
	badRole.Role = "watcher"
	shortLease := installer("host-a", 500*time.Millisecond) // would shorten host-a's lease
	zeroLease := installer("host-z", 0)
	bad["empty id"] = noID
	bad["bad role"] = badRole
	bad["short lease"] = shortLease
	bad["zero lease"] = zeroLease
	at(env, 2*time.Second, func() {
		for name, r := range bad {
			outcomes[name] = register(t, env, r)
		}
	})
	before := snapshot(t, env, 1500*time.Millisecond)
	after := snapshot(t, env, 3*time.Second)
	runRegistry(t, env, workflows.RegistryState{}, 10*time.Second)

	require.NotNil(t, good)
	assert.True(t, good.accepted)
	assert.NoError(t, good.err)
	for name, o := range outcomes {
		assert.True(t, o.rejected, "%s: not rejected", name)
		assert.False(t, o.accepted, "%s: accepted", name)
		assert.Error(t, o.err, name)
	}
	assert.Contains(t, fmt.Sprint(outcomes["empty id"].err), "no id")
	assert.Contains(t, fmt.Sprint(outcomes["bad role"].err), "watcher")
	assert.Contains(t, fmt.Sprint(outcomes["short lease"].err), "shorter than one second")
	require.Len(t, *before, 1)
	assert.Equal(t, *before, *after, "a rejected registration changed the registry")
}

// A registry started with state (what continue-as-new carries) serves those
// leases and expires them on their own schedule.
func TestRegistryStartsFromState(t *testing.T) {
	env := newRegistryEnv(t)
	reg := t0.Add(-time.Hour)
	state := workflows.RegistryState{Leases: map[string]workflows.Lease{
		"installer/host-a": {Registration: installer("host-a", time.Minute), Registered: reg, Renewed: t0.Add(-30 * time.Second), Expires: t0.Add(30 * time.Second)},
		"builder/b1":       {Registration: builder("b1", 10*time.Minute), Registered: reg, Renewed: t0, Expires: t0.Add(10 * time.Minute)},
	}}
	first := snapshot(t, env, time.Second)
	later := snapshot(t, env, 31*time.Second)
	runRegistry(t, env, state, time.Minute)

	require.Equal(t, []string{"builder/b1", "installer/host-a"}, keys(*first))
	for _, l := range *first {
		w := state.Leases[l.Key()]
		assert.True(t, w.Registered.Equal(l.Registered))
		assert.True(t, w.Renewed.Equal(l.Renewed))
		assert.True(t, w.Expires.Equal(l.Expires))
		assert.Equal(t, w.Registration, l.Registration)
	}
	assert.Equal(t, []string{"builder/b1"}, keys(*later))
}

// canState runs the registry until it continues as new and returns the state
// it carries over.
func canState(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.RegistryState {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "registry ended with %v, want continue-as-new", err)
	assert.Equal(t, workflows.RegistryWorkflowName, can.WorkflowType.Name)
	var st workflows.RegistryState
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &st))
	return st
}

func TestRegistryContinueAsNewWhenSuggested(t *testing.T) {
	env := newRegistryEnv(t)
	start := workflows.RegistryState{Leases: map[string]workflows.Lease{
		"builder/b1": {Registration: builder("b1", time.Hour), Registered: t0, Renewed: t0, Expires: t0.Add(time.Hour)},
	}}
	at(env, time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	var last *outcome
	at(env, 5*time.Second, func() { last = register(t, env, installer("host-b", time.Minute)) })
	// The server's suggestion arrives with a workflow task; in the test env
	// the delayed callback is one.
	at(env, 6*time.Second, func() { env.SetContinueAsNewSuggested(true) })
	stillRunning := snapshot(t, env, 5500*time.Millisecond)
	env.ExecuteWorkflow(workflows.RegistryWorkflowName, start)
	st := canState(t, env)

	assert.Equal(t, []string{"builder/b1", "installer/host-a", "installer/host-b"}, keys(*stillRunning))
	require.NotNil(t, last)
	assert.True(t, last.completed)
	assert.NoError(t, last.err)
	require.Len(t, st.Leases, 3)
	assert.True(t, t0.Add(time.Hour).Equal(st.Leases["builder/b1"].Expires))
	a := st.Leases["installer/host-a"]
	assert.True(t, t0.Add(time.Second).Equal(a.Registered))
	assert.True(t, t0.Add(61*time.Second).Equal(a.Expires))
	assert.Equal(t, installer("host-a", time.Minute), a.Registration)
	assert.True(t, t0.Add(65*time.Second).Equal(st.Leases["installer/host-b"].Expires))
}

func TestRegistryContinueAsNewOnLongHistory(t *testing.T) {
	env := newRegistryEnv(t)
	at(env, time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	at(env, 2*time.Second, func() { register(t, env, installer("host-a", time.Minute)) })
	at(env, 3*time.Second, func() { env.SetCurrentHistoryLength(20000) })
	env.ExecuteWorkflow(workflows.RegistryWorkflowName, workflows.RegistryState{})
	st := canState(t, env)
	require.Len(t, st.Leases, 1)
	l := st.Leases["installer/host-a"]
	assert.True(t, t0.Add(time.Second).Equal(l.Registered))
	assert.True(t, t0.Add(2*time.Second).Equal(l.Renewed))
}
