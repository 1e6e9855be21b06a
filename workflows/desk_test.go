package workflows_test

import (
	"context"
	"fmt"
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

// deskStand is the manager's and the hosts' side of a Desk's questions.
type deskStand struct {
	hosts     []string
	whereWait time.Duration
}

func (s *deskStand) Plan(_ context.Context, in workflows.PlanInput) (workflows.Plan, error) {
	if in.Request.Project != "site" {
		return workflows.Plan{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("unknown project %q", in.Request.Project), workflows.ErrRejected, nil)
	}
	return workflows.Plan{
		Targets: []string{"app"},
		Hosts:   map[string][]string{"app": s.hosts},
		Rollout: rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "2"},
		// The desk hands the signed-for id on: the plan says it back.
		Principal: in.Transaction,
	}, nil
}

func (s *deskStand) Hosts(_ context.Context, in workflows.HostsInput) (workflows.HostsResult, error) {
	return workflows.HostsResult{Targets: []string{"app"}, Hosts: map[string][]string{"app": s.hosts}}, nil
}

func (s *deskStand) Where(ctx context.Context, in workflows.WhereHostInput) (map[string]workflows.LiveInstall, error) {
	if s.whereWait > 0 {
		time.Sleep(s.whereWait)
	}
	q := activity.GetInfo(ctx).TaskQueue
	if q == workflows.HostQueue(workflows.DefaultManagerQueue, "host-x") {
		return nil, temporal.NewNonRetryableApplicationError("host host-x: disk on fire", "Boom", nil)
	}
	return map[string]workflows.LiveInstall{"app": {Target: "app", Transaction: "tx-on-" + q}}, nil
}

func newDeskEnv(t *testing.T, s *deskStand) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.DeskID(workflows.DefaultManagerQueue), TaskQueue: workflows.DefaultManagerQueue})
	env.SetTestTimeout(time.Minute)
	env.RegisterWorkflowWithOptions(workflows.Desk, workflow.RegisterOptions{Name: workflows.DeskWorkflowName})
	env.RegisterActivityWithOptions(s.Plan, activity.RegisterOptions{Name: workflows.PlanActivity})
	env.RegisterActivityWithOptions(s.Hosts, activity.RegisterOptions{Name: workflows.HostsActivity})
	env.RegisterActivityWithOptions(s.Where, activity.RegisterOptions{Name: workflows.WhereActivity})
	return env
}

// answer is what one question to the desk got.
type answer struct {
	rejected, completed bool
	err                 error
	value               any
}

// get puts the answer into out: the test environment hands over the
// handler's own value, or an encoded one.
func (a *answer) get(t *testing.T, out any) {
	t.Helper()
	require.True(t, a.completed)
	require.NoError(t, a.err)
	switch v := a.value.(type) {
	case converter.EncodedValue:
		require.NoError(t, v.Get(out))
	case *workflows.PlanOnlyResult:
		*out.(*workflows.PlanOnlyResult) = *v
	case workflows.WhereResult:
		*out.(*workflows.WhereResult) = v
	default:
		t.Fatalf("answer of type %T", v)
	}
}

func ask(env *testsuite.TestWorkflowEnvironment, update string, in any) *answer {
	a := &answer{}
	env.UpdateWorkflow(update, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { a.rejected, a.err = true, err },
		OnComplete: func(v any, err error) {
			a.completed, a.err, a.value = true, err, v
		},
	}, in)
	return a
}

func TestDeskAnswersPlanAndWhere(t *testing.T) {
	env := newDeskEnv(t, &deskStand{hosts: []string{"host-a", "host-b", "host-x"}})
	var plan, signed, rejected, where *answer
	env.RegisterDelayedCallback(func() {
		plan = ask(env, workflows.PlanUpdate, workflows.PlanInput{Request: workflows.Request{Project: "site", Action: workflows.ActionInstall, Env: "test"}})
		signed = ask(env, workflows.PlanUpdate, workflows.PlanInput{Request: workflows.Request{Project: "site", Action: workflows.ActionInstall, Env: "test"}, Transaction: "plan-1"})
		rejected = ask(env, workflows.PlanUpdate, workflows.PlanInput{Request: workflows.Request{Project: "nope", Action: workflows.ActionInstall, Env: "test"}})
		where = ask(env, workflows.WhereUpdate, workflows.WhereInput{Project: "site", Env: "test"})
	}, time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(workflows.DeskWorkflowName, workflows.DeskState{})

	var p workflows.PlanOnlyResult
	plan.get(t, &p)
	assert.Equal(t, [][]string{{"host-a", "host-b"}, {"host-x"}}, p.Batches)
	assert.NotEmpty(t, p.Plan.Principal, "an unsigned question is bound to the update's id")
	signed.get(t, &p)
	assert.Equal(t, "plan-1", p.Plan.Principal, "a signed question keeps the id signed for")

	require.True(t, rejected.completed)
	require.Error(t, rejected.err)
	assert.Contains(t, rejected.err.Error(), `unknown project "nope"`)

	var w workflows.WhereResult
	where.get(t, &w)
	assert.Equal(t, "tx-on-relman-host-host-a", w.Hosts["host-a"]["app"].Transaction)
	assert.Equal(t, "tx-on-relman-host-host-b", w.Hosts["host-b"]["app"].Transaction)
	assert.Contains(t, w.Errors["host-x"], "disk on fire")
}

// A where over more hosts than the desk lets be pending at once is sent out
// in parts, and every host still answers.
func TestDeskWhereInParts(t *testing.T) {
	defer workflows.SetDeskBounds(1000, 2)()
	hosts := []string{"h-1", "h-2", "h-3", "h-4", "h-5"}
	env := newDeskEnv(t, &deskStand{hosts: hosts})
	var where *answer
	env.RegisterDelayedCallback(func() {
		where = ask(env, workflows.WhereUpdate, workflows.WhereInput{Project: "site", Env: "test"})
	}, time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(workflows.DeskWorkflowName, workflows.DeskState{})
	var w workflows.WhereResult
	where.get(t, &w)
	assert.Len(t, w.Hosts, len(hosts))
	assert.Empty(t, w.Errors)
	for _, h := range hosts {
		assert.Equal(t, "tx-on-relman-host-"+h, w.Hosts[h]["app"].Transaction)
	}
}

// After its share of questions the desk answers those it took, turns new
// ones away (the client asks the next run) and continues as new.
func TestDeskContinuesAsNew(t *testing.T) {
	defer workflows.SetDeskBounds(2, 1000)()
	env := newDeskEnv(t, &deskStand{hosts: []string{"host-a"}, whereWait: 2 * time.Second})
	var first, second, late *answer
	env.RegisterDelayedCallback(func() {
		first = ask(env, workflows.WhereUpdate, workflows.WhereInput{Project: "site", Env: "test"})
		second = ask(env, workflows.PlanUpdate, workflows.PlanInput{Request: workflows.Request{Project: "site", Action: workflows.ActionBuild}})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		late = ask(env, workflows.PlanUpdate, workflows.PlanInput{Request: workflows.Request{Project: "site", Action: workflows.ActionBuild}})
	}, 1500*time.Millisecond)
	env.ExecuteWorkflow(workflows.DeskWorkflowName, workflows.DeskState{})

	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	assert.Equal(t, workflows.DeskWorkflowName, can.WorkflowType.Name)
	require.True(t, first.completed, "a question taken is answered before the hand-over")
	require.NoError(t, first.err)
	require.True(t, second.completed)
	require.NoError(t, second.err)
	require.NotNil(t, late)
	require.True(t, late.rejected, "a question after the desk's share is turned away")
	var app *temporal.ApplicationError
	require.ErrorAs(t, late.err, &app)
	assert.Equal(t, workflows.ErrDeskHandingOver, app.Type())
}
