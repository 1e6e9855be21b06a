package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/workflows"
)

// Record is the stand-in of the manager's Record activity: it keeps what
// it was asked to record.
func (s *stand) Record(_ context.Context, in workflows.RecordInput) (workflows.RecordResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, in)
	return workflows.RecordResult{Key: "transactions/" + in.Detail.Transaction + ".json"}, nil
}

func (s *stand) recordCalls() []workflows.RecordInput {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]workflows.RecordInput(nil), s.records...)
}

// recordNothing stands in for a manager that keeps no records.
func recordNothing(context.Context, workflows.RecordInput) (workflows.RecordResult, error) {
	return workflows.RecordResult{}, nil
}

// TestReleaseRecordsItsEnd: however a release ends, the manager is asked
// once, after the final status, to record the detail the release ends with.
func TestReleaseRecordsItsEnd(t *testing.T) {
	for name, tc := range map[string]struct {
		in     func() workflows.ReleaseInput
		setup  func(*stand)
		cancel bool
		want   workflows.Status
	}{
		"install completed": {in: installRequest, want: workflows.StatusInstallCompleted},
		"build completed": {in: func() workflows.ReleaseInput {
			in := installRequest()
			in.Request.Action, in.Request.Env = workflows.ActionBuild, ""
			return in
		}, want: workflows.StatusBuildCompleted},
		"rejected": {in: installRequest, setup: func(s *stand) {
			s.planErr = temporal.NewNonRetryableApplicationError("unknown project", workflows.ErrRejected, nil)
		}, want: workflows.StatusRejected},
		"build failed": {in: installRequest, setup: func(s *stand) {
			s.build = func(context.Context, workflows.BuildInput) (workflows.BuildResult, error) {
				return workflows.BuildResult{}, temporal.NewNonRetryableApplicationError("make: exit 2", workflows.ErrBuildFailed, nil)
			}
		}, want: workflows.StatusBuildFailed},
		"install failed": {in: installRequest, setup: func(s *stand) { s.install = failOn("host-b") }, want: workflows.StatusInstallFailed},
		"cancelled": {in: installRequest, setup: func(s *stand) {
			s.build = func(ctx context.Context, _ workflows.BuildInput) (workflows.BuildResult, error) {
				for {
					activity.RecordHeartbeat(ctx, "building")
					select {
					case <-ctx.Done():
						return workflows.BuildResult{}, ctx.Err()
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}, cancel: true, want: workflows.StatusCancelled},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStand(farmPlan())
			if tc.setup != nil {
				tc.setup(s)
			}
			env := newReleaseEnv(t, s)
			if tc.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, 200*time.Millisecond)
			}
			env.ExecuteWorkflow(workflows.ReleaseWorkflowName, tc.in())
			require.True(t, env.IsWorkflowCompleted())
			end := queryDetail(t, env)
			require.Equal(t, tc.want, end.Status)
			recs := s.recordCalls()
			require.Len(t, recs, 1, "one record per transaction")
			assert.Equal(t, workflows.ReleaseWorkflowName, recs[0].Workflow)
			assert.Equal(t, end, recs[0].Detail, "the record holds the detail the release ends with")
			assert.False(t, recs[0].Detail.Ended.IsZero())
			assert.True(t, recs[0].Detail.Status.Final(recs[0].Detail.Request.Action))
		})
	}
}

// TestReleaseEndsWithoutItsRecord: a store that stays away costs the
// transaction its record, not its ending: it is retried, then the release
// ends as it would have.
func TestReleaseEndsWithoutItsRecord(t *testing.T) {
	s := newStand(farmPlan())
	env := newReleaseEnv(t, s)
	attempts := 0
	env.OnActivity(workflows.RecordActivity, mock.Anything, mock.Anything).Return(
		func(context.Context, workflows.RecordInput) (workflows.RecordResult, error) {
			attempts++
			return workflows.RecordResult{}, errors.New("store unreachable")
		})
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Equal(t, 10, attempts, "the record is retried before the release gives up on it")
}

func TestRollbackRecordsItsEnd(t *testing.T) {
	env := rolloutEnv(t, func(context.Context, workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		return workflows.RollbackHostResult{From: "tx-3", To: "tx-2"}, nil
	})
	var recs []workflows.RecordInput
	env.OnActivity(workflows.RecordActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in workflows.RecordInput) (workflows.RecordResult, error) {
			recs = append(recs, in)
			return workflows.RecordResult{}, nil
		})
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, rollbackInput())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	require.Len(t, recs, 1)
	assert.Equal(t, workflows.RollbackWorkflowName, recs[0].Workflow)
	assert.Equal(t, d, recs[0].Detail)
	assert.Equal(t, workflows.StatusRollbackCompleted, recs[0].Detail.Status)
}

// TestRecordsWorkflow: the Records workflow hands the manager's answer
// through, and does not retry an answer that cannot change (no record,
// a record that does not verify).
func TestRecordsWorkflow(t *testing.T) {
	for name, tc := range map[string]struct {
		err      error
		wantType string
		calls    int
	}{
		"found":      {calls: 1},
		"no record":  {err: temporal.NewNonRetryableApplicationError("no record of tx-9", workflows.ErrNoRecord, nil), wantType: workflows.ErrNoRecord, calls: 1},
		"unverified": {err: temporal.NewApplicationError("record of tx-9 does not verify", workflows.ErrRecordUnverified), wantType: workflows.ErrRecordUnverified, calls: 1},
		"store away": {err: errors.New("store unreachable"), wantType: "", calls: 3},
	} {
		t.Run(name, func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(workflows.Records, workflow.RegisterOptions{Name: workflows.RecordsWorkflowName})
			calls := 0
			env.RegisterActivityWithOptions(func(_ context.Context, in workflows.RecordsInput) (workflows.RecordsResult, error) {
				calls++
				if tc.err != nil {
					return workflows.RecordsResult{}, tc.err
				}
				return workflows.RecordsResult{Record: []byte(in.Transaction)}, nil
			}, activity.RegisterOptions{Name: workflows.ReadRecordsActivity})
			env.ExecuteWorkflow(workflows.RecordsWorkflowName, workflows.RecordsInput{Transaction: "tx-9"})
			require.True(t, env.IsWorkflowCompleted())
			assert.Equal(t, tc.calls, calls)
			if tc.err == nil {
				var res workflows.RecordsResult
				require.NoError(t, env.GetWorkflowResult(&res))
				assert.Equal(t, "tx-9", string(res.Record))
				return
			}
			var app *temporal.ApplicationError
			require.ErrorAs(t, env.GetWorkflowError(), &app)
			if tc.wantType != "" {
				assert.Equal(t, tc.wantType, app.Type())
			}
		})
	}
}
