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
