package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/workflows"
)

// Updates the server dropped while a shard continued as new are sent
// again; a refusal by the registry and a caller's deadline are not.
func TestDropped(t *testing.T) {
	tests := map[string]struct {
		err  error
		want bool
	}{
		"workflow task failed under the update": {err: fmt.Errorf("failed workflow update: %w", serviceerror.NewWorkflowNotReady("Unable to perform workflow execution update due to unexpected workflow task failure.")), want: true},
		"aborted by the server":                 {err: serviceerror.NewUnavailable("workflow update was aborted"), want: true},
		"aborted by the closing run":            {err: serviceerror.NewNotFound("workflow update was aborted by closing workflow"), want: true},
		"run closed before answering":           {err: temporal.NewNonRetryableApplicationError("Workflow Update failed because the Workflow completed before the Update completed.", acceptedUpdateCompletedWorkflow, nil), want: true},
		"refused by the registry":               {err: temporal.NewApplicationError(`installer id "x" is taken`, "")},
		"caller's deadline":                     {err: context.DeadlineExceeded},
		"bad argument":                          {err: serviceerror.NewInvalidArgument("bad")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, dropped(tc.err))
		})
	}
}

// A read when no manager polls the queue says which manager is down and
// what to start, once, not Temporal's words for each shard.
func TestListManagerDown(t *testing.T) {
	c := mocks.NewClient(t)
	c.On("QueryWorkflow", mock.Anything, mock.Anything, "", workflows.RegistrationsQuery).
		Return(nil, serviceerror.NewFailedPrecondition("no poller seen for task queue recently, worker may be down"))
	_, err := Registry{Client: c, ID: "relman-registry-team-b", ManagerQueue: "team-b"}.List(context.Background(), time.Now())
	var down *ManagerDownError
	require.ErrorAs(t, err, &down)
	assert.Equal(t, "team-b", down.Queue)
	msg := err.Error()
	assert.Contains(t, msg, "the manager on task queue team-b is down")
	assert.Contains(t, msg, "relman manager --config")
	assert.Contains(t, msg, "manager_queue: team-b")
	assert.NotContains(t, msg, "worker may be down")
	assert.Equal(t, 1, strings.Count(msg, "is down"))
}

// Other failures stay what they were, naming the shard.
func TestListOtherError(t *testing.T) {
	c := mocks.NewClient(t)
	c.On("QueryWorkflow", mock.Anything, mock.Anything, "", workflows.RegistrationsQuery).
		Return(nil, serviceerror.NewUnavailable("connection refused"))
	_, err := Registry{Client: c, ID: "r", ManagerQueue: "q"}.List(context.Background(), time.Now())
	require.Error(t, err)
	var down *ManagerDownError
	assert.False(t, errors.As(err, &down))
	assert.Contains(t, err.Error(), "read registry r")
}

// One registry workflow that does not answer (a broken shard, or one under
// a shard's id that no manager of this queue runs) leaves the others'
// leases usable, with a *PartialError naming it; when none answers, the
// read fails.
func TestListSurvivesAShardThatDoesNotAnswer(t *testing.T) {
	now := time.Now()
	reg := Registry{ID: "relman-registry", ManagerQueue: "relman-manager"}
	bad := workflows.RegistryShardID(reg.ID, 3)
	c := mocks.NewClient(t)
	c.On("QueryWorkflow", mock.Anything, bad, "", workflows.RegistrationsQuery).
		Return(nil, serviceerror.NewFailedPrecondition("no poller seen for task queue recently, worker may be down"))
	c.On("QueryWorkflow", mock.Anything, workflows.RegistryShardID(reg.ID, 5), "", workflows.RegistrationsQuery).
		Return(leases(t, workflows.Lease{Registration: workflows.Registration{Role: workflows.RoleInstaller, ID: "host-a"}, Expires: now.Add(time.Minute)}), nil)
	c.On("QueryWorkflow", mock.Anything, mock.Anything, "", workflows.RegistrationsQuery).
		Return(nil, serviceerror.NewNotFound("never started"))
	reg.Client = c
	ls, err := reg.List(context.Background(), now)
	p := Partial(err)
	require.NotNil(t, p, "a partial read: %v", err)
	assert.Equal(t, []string{bad}, p.IDs())
	assert.Contains(t, err.Error(), bad+" did not answer, so the roles registered there are missing")
	require.Len(t, ls, 1)
	assert.Equal(t, "host-a", ls[0].ID)

	// With what each answered last kept, a shard that stops answering
	// stands in with its last leases, still live ones only.
	reg.Known = &Known{}
	good := workflows.RegistryShardID(reg.ID, 7)
	flaky := mocks.NewClient(t)
	flaky.On("QueryWorkflow", mock.Anything, good, "", workflows.RegistrationsQuery).
		Return(leases(t, workflows.Lease{Registration: workflows.Registration{Role: workflows.RoleInstaller, ID: "host-b"}, Expires: now.Add(time.Minute)}), nil).Once()
	flaky.On("QueryWorkflow", mock.Anything, good, "", workflows.RegistrationsQuery).
		Return(nil, errors.New("shard starting"))
	flaky.On("QueryWorkflow", mock.Anything, mock.Anything, "", workflows.RegistrationsQuery).
		Return(nil, serviceerror.NewNotFound("never started"))
	reg.Client = flaky
	ls, err = reg.List(context.Background(), now)
	require.NoError(t, err)
	require.Len(t, ls, 1)
	ls, err = reg.List(context.Background(), now)
	require.NotNil(t, Partial(err))
	assert.Contains(t, err.Error(), good+" did not answer; their last known leases stand in")
	require.Len(t, ls, 1, "host-b from the shard's last answer")
	assert.Equal(t, "host-b", ls[0].ID)
	ls, err = reg.List(context.Background(), now.Add(2*time.Minute))
	require.NotNil(t, Partial(err))
	assert.Empty(t, ls, "a last known lease that has expired does not stand in")
	reg.Known = nil

	none := mocks.NewClient(t)
	none.On("QueryWorkflow", mock.Anything, mock.Anything, "", workflows.RegistrationsQuery).
		Return(nil, errors.New("boom"))
	reg.Client = none
	_, err = reg.List(context.Background(), now)
	require.Error(t, err)
	assert.Nil(t, Partial(err), "nothing answered: not a partial read")
}

// leases is a query answer holding ls.
func leases(t *testing.T, ls ...workflows.Lease) *mocks.Value {
	v := mocks.NewEncodedValue(t)
	v.On("Get", mock.Anything).Run(func(args mock.Arguments) {
		*args.Get(0).(*[]workflows.Lease) = ls
	}).Return(nil)
	return v
}
