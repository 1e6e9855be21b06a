package workflows_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
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
	return workflows.RecordResult{Key: "transactions/default/" + in.Transaction + ".json"}, nil
}

// StartRecorder stands in for the manager starting a transaction's
// recorder: it records what it would start, and runs the record at once.
func (s *stand) StartRecorder(ctx context.Context, in workflows.StartRecorderInput) error {
	s.mu.Lock()
	s.recorders = append(s.recorders, in.ID)
	err := s.recorderErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = s.Record(ctx, in.Record)
	return err
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

// startNoRecorder stands in for a manager that keeps no records: it starts
// no recorder.
func startNoRecorder(context.Context, workflows.StartRecorderInput) error { return nil }

// steps follows a transaction: its status upserts and its recorder's
// start, in order.
type steps struct {
	mu  sync.Mutex
	log []string
}

func (s *steps) add(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, x)
}

func (s *steps) follow(env *testsuite.TestWorkflowEnvironment) *steps {
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(temporal.NewSearchAttributeKeyKeyword(workflows.SAStatus)); ok {
			s.add("status " + v)
		}
	}).Return(nil)
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		s.add("started " + info.WorkflowType.Name + " " + info.WorkflowExecution.ID)
	})
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, args []any) {
		if info.ActivityType.Name != workflows.StartRecorderActivity {
			return
		}
		in := args[0].(workflows.StartRecorderInput)
		s.add("started " + workflows.RecordTransactionWorkflowName + " " + in.ID)
	})
	return s
}

// TestReleaseRecordsItsEnd: however a release ends, it starts its
// recorder once, just before its final status (so the final status and the
// close come together), and the recorder has the manager record it.
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
			seen := (&steps{}).follow(env)
			if tc.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, 200*time.Millisecond)
			}
			env.ExecuteWorkflow(workflows.ReleaseWorkflowName, tc.in())
			require.True(t, env.IsWorkflowCompleted())
			require.Equal(t, tc.want, queryStatus(t, env))
			recorder := "started " + workflows.RecordTransactionWorkflowName + " " + "default-test-run-id" + workflows.RecordIDSuffix
			seen.mu.Lock()
			log := seen.log
			seen.mu.Unlock()
			require.GreaterOrEqual(t, len(log), 2, "%v", log)
			assert.Equal(t, []string{recorder, "status " + string(tc.want)}, log[len(log)-2:],
				"the recorder starts just before the final status: %v", log)
			assert.Equal(t, 1, strings.Count(strings.Join(log, "\n"), recorder), "one recorder: %v", log)
			assert.Equal(t, []workflows.RecordInput{{Workflow: workflows.ReleaseWorkflowName, Transaction: testTX}}, s.recordCalls())
		})
	}
}

// TestReleaseClosesBeforeItsRecord: a release closes as soon as its
// recorder has started, and closes as it would have when the recorder
// cannot start; the record is the recorder's business, so a store that is
// away holds up nothing.
func TestReleaseClosesBeforeItsRecord(t *testing.T) {
	s := newStand(farmPlan())
	s.recorderErr = errors.New("frontend unreachable")
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
}

// TestRecordTransactionRetries: the recorder tries again until the store
// takes the record, and gives up at once on an index it must not replace.
func TestRecordTransactionRetries(t *testing.T) {
	for name, tc := range map[string]struct {
		errs    []error
		calls   int
		wantErr string
	}{
		"store back after three tries": {errs: []error{errors.New("down"), errors.New("down"), errors.New("down")}, calls: 4},
		"index taken": {
			errs:    []error{temporal.NewNonRetryableApplicationError("index taken", workflows.ErrRecordIndexTaken, nil)},
			calls:   1,
			wantErr: workflows.ErrRecordIndexTaken,
		},
	} {
		t.Run(name, func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(workflows.RecordTransaction, workflow.RegisterOptions{Name: workflows.RecordTransactionWorkflowName})
			calls := 0
			env.RegisterActivityWithOptions(func(_ context.Context, in workflows.RecordInput) (workflows.RecordResult, error) {
				calls++
				if calls <= len(tc.errs) {
					return workflows.RecordResult{}, tc.errs[calls-1]
				}
				return workflows.RecordResult{Key: "transactions/" + in.Transaction + ".json"}, nil
			}, activity.RegisterOptions{Name: workflows.RecordActivity})
			env.ExecuteWorkflow(workflows.RecordTransactionWorkflowName, workflows.RecordInput{Workflow: workflows.ReleaseWorkflowName, Transaction: "tx-9"})
			require.True(t, env.IsWorkflowCompleted())
			assert.Equal(t, tc.calls, calls)
			if tc.wantErr != "" {
				var app *temporal.ApplicationError
				require.ErrorAs(t, env.GetWorkflowError(), &app)
				assert.Equal(t, tc.wantErr, app.Type())
				return
			}
			var res workflows.RecordResult
			require.NoError(t, env.GetWorkflowResult(&res))
			assert.Equal(t, "transactions/tx-9.json", res.Key)
		})
	}
}

func TestRollbackRecordsItsEnd(t *testing.T) {
	env := rolloutEnv(t, func(context.Context, workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
		return workflows.RollbackHostResult{From: "tx-3", To: "tx-2"}, nil
	})
	var recs []workflows.RecordInput
	env.OnActivity(workflows.StartRecorderActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in workflows.StartRecorderInput) error {
			recs = append(recs, in.Record)
			return nil
		})
	seen := (&steps{}).follow(env)
	env.ExecuteWorkflow(workflows.RollbackWorkflowName, rollbackInput())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	require.Equal(t, workflows.StatusRollbackCompleted, d.Status)
	assert.Equal(t, []workflows.RecordInput{{Workflow: workflows.RollbackWorkflowName, Transaction: d.Transaction}}, recs)
	log := seen.log
	require.GreaterOrEqual(t, len(log), 2)
	assert.Equal(t, "status "+string(workflows.StatusRollbackCompleted), log[len(log)-1])
	assert.Contains(t, log[len(log)-2], workflows.RecordTransactionWorkflowName)
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
