package temporalclient

import (
	"context"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// Entity names a long-lived workflow that is started on demand: its id,
// the queue it runs on, its type and the state a fresh run starts from.
type Entity struct {
	ID       string
	Queue    string
	Workflow string
	State    any
}

// StartOptions start the entity, or find its running run: a second start
// joins the first, and a closed run may be followed by a new one.
func (e Entity) StartOptions() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       e.ID,
		TaskQueue:                e.Queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
}

// UpdateWithStart sends the update with arg to the entity, starting it if
// no run is open, waits for the update to complete and decodes its result
// into out (out nil: the result is dropped). It tries once: what to try
// again is the caller's to say.
func UpdateWithStart(ctx context.Context, c client.Client, e Entity, update string, arg, out any) error {
	start := c.NewWithStartWorkflowOperation(e.StartOptions(), e.Workflow, e.State)
	h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   update,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return err
	}
	return h.Get(ctx, out)
}
