package workflows_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// withSigner runs env's workflows as a manager worker does: with the
// order-signing interceptor of a key of its own, which it returns.
func withSigner(t *testing.T, env *testsuite.TestWorkflowEnvironment) ed25519.PublicKey {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{
		workflows.OrderSigning(&workflows.OrderSigner{Key: key, Namespace: "ns", Queue: workflows.DefaultManagerQueue}),
	}})
	return pub
}

// Every install a release schedules carries an order the manager signed
// for that host, target and artifact, which the host's check accepts,
// valid for as long as the install may take and no longer.
func TestReleaseSignsInstallOrders(t *testing.T) {
	s := newStand(farmPlan())
	env := newReleaseEnv(t, s)
	pub := withSigner(t, env)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	calls := s.installCalls()
	require.Len(t, calls, 5)
	ids := map[string]bool{}
	longest := 3 * (config.DefaultHostTimeout + config.DefaultInstallTimeout)
	for _, c := range calls {
		require.NotNil(t, c.In.Order, "%s/%s has no order", c.Host, c.In.Target)
		o := c.In.Order.Order
		want := auth.OrderExpect{Namespace: "ns", Queue: workflows.DefaultManagerQueue, Transaction: testTX,
			Host: c.Host, Env: "test", Target: c.In.Target, Action: workflows.OrderInstall, SHA256: c.In.Artifact.SHA256}
		require.NoError(t, auth.VerifyOrder(c.In.Order, []ed25519.PublicKey{pub}, want, t0))
		assert.Equal(t, c.Info.WorkflowExecution.RunID, o.RunID)
		assert.Equal(t, t0.Add(longest+config.DefaultOrderMargin), o.Expires, "valid for every attempt plus the margin")
		require.NoError(t, auth.VerifyOrder(c.In.Order, []ed25519.PublicKey{pub}, want, t0.Add(longest)))
		assert.Error(t, auth.VerifyOrder(c.In.Order, []ed25519.PublicKey{pub}, want, o.Expires))
		// The order of one host does not do for another.
		other := want
		other.Host = "host-z"
		assert.Error(t, auth.VerifyOrder(c.In.Order, []ed25519.PublicKey{pub}, other, t0))
		assert.False(t, ids[o.ID], "order id %s used twice", o.ID)
		ids[o.ID] = true
	}
}

// Without a signer in the workflow's context (a worker without the
// manager's interceptor) orders stay empty, and hosts refuse them.
func TestReleaseWithoutSignerSendsNoOrder(t *testing.T) {
	s := newStand(farmPlan())
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.NoError(t, env.GetWorkflowError())
	for _, c := range s.installCalls() {
		assert.Nil(t, c.In.Order)
	}
}

// Orders signed by the release travel through HostFanOut children
// unchanged, and so do the rollback orders of an automatic rollback.
func TestOrdersThroughChildrenAndAutoRollback(t *testing.T) {
	s := newStand(fleetPlan(400, rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "75%", AutoRollback: true}))
	s.install = failOn("h0350")
	env, ss, _ := newFleetEnv(t, s)
	pub := withSigner(t, env)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	_, d := failure(t, env)
	require.Contains(t, d.Reason, "rolled back 798 of 798")
	ids := map[string]bool{}
	calls := s.installCalls()
	require.Len(t, calls, 800)
	for _, c := range calls {
		want := auth.OrderExpect{Namespace: "ns", Queue: workflows.DefaultManagerQueue, Transaction: testTX,
			Host: c.Host, Env: "test", Target: c.In.Target, Action: workflows.OrderInstall, SHA256: c.In.Artifact.SHA256}
		require.NoError(t, auth.VerifyOrder(c.In.Order, []ed25519.PublicKey{pub}, want, t0), "%s/%s", c.Host, c.In.Target)
		require.False(t, ids[c.In.Order.Order.ID])
		ids[c.In.Order.Order.ID] = true
	}
	require.Len(t, ss.rollbacks, 798)
	for _, in := range ss.rollbacks {
		require.NotNil(t, in.Order)
		want := auth.OrderExpect{Namespace: "ns", Queue: workflows.DefaultManagerQueue, Transaction: testTX + "-auto-rollback",
			Host: in.Order.Order.Host, Env: "test", Target: in.Target, Action: workflows.OrderRollback}
		require.NoError(t, auth.VerifyOrder(in.Order, []ed25519.PublicKey{pub}, want, t0))
		require.False(t, ids[in.Order.Order.ID])
		ids[in.Order.Order.ID] = true
	}
}

// A rollback's orders bind the action rollback and the release it goes
// back to.
func TestRollbackSignsOrders(t *testing.T) {
	var got []workflows.RollbackHostInput
	var queues []string
	env := rolloutEnv(t, func(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		got = append(got, in)
		queues = append(queues, activity.GetInfo(ctx).TaskQueue)
		return workflows.RollbackHostResult{From: "tx-3", To: "tx-1", Attempt: 1}, nil
	})
	pub := withSigner(t, env)
	in := rollbackInput()
	in.To = "tx-1"
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, got, 2)
	for i, rb := range got {
		host := queueHost(queues[i])
		want := auth.OrderExpect{Namespace: "ns", Queue: workflows.DefaultManagerQueue, Transaction: rb.Transaction,
			Host: host, Env: "test", Target: "app", Action: workflows.OrderRollback, To: "tx-1"}
		require.NoError(t, auth.VerifyOrder(rb.Order, []ed25519.PublicKey{pub}, want, time.Now()))
		want.To = ""
		assert.Error(t, auth.VerifyOrder(rb.Order, []ed25519.PublicKey{pub}, want, time.Now()), "bound to its rollback target")
	}
}
