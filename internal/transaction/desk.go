package transaction

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/workflows"
)

// askTimeout bounds a question to a manager's Desk: a where waits at most
// about a minute for its slowest host, and no answer at all means no
// manager (or only managers older than the Desk) serves the queue.
const askTimeout = 2 * time.Minute

// ErrNoAnswer: no manager answered a question in time.
var ErrNoAnswer = errors.New("no answer from the manager")

// ask puts a question (an update) to the Desk of the manager on queue,
// starting the Desk when none runs, and decodes the answer into out. While
// the Desk hands over to its next run, or has as many questions in hand as
// Temporal allows, it asks again after a pause.
func ask(ctx context.Context, c client.Client, queue, update string, arg, out any) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, askTimeout)
	defer cancel()
	noAnswer := fmt.Errorf("the manager on queue %s did not answer within %s; check that a manager of this relman version or later serves that queue: %w", queue, askTimeout, ErrNoAnswer)
	pause := 100 * time.Millisecond
	for {
		err := askOnce(ctx, c, queue, update, arg, out)
		switch {
		case err == nil:
			return nil
		case parent.Err() != nil:
			return err
		case ctx.Err() != nil:
			return noAnswer
		case !askAgain(err):
			return err
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return noAnswer
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

func askOnce(ctx context.Context, c client.Client, queue, update string, arg, out any) error {
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.DeskID(queue),
		TaskQueue:                queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.DeskWorkflowName, workflows.DeskState{})
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

// askAgain tells the errors a later try gets past: the Desk turning
// questions away while it hands over, Temporal's bound on updates in
// flight, and a run that closed under the question.
func askAgain(err error) bool {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type() == workflows.ErrDeskHandingOver
	}
	var exhausted *serviceerror.ResourceExhausted
	var nf *serviceerror.NotFound
	return errors.As(err, &exhausted) || errors.As(err, &nf)
}
