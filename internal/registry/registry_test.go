package registry

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
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
