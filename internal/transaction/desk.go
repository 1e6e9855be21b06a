package transaction

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/retry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workflows"
)

// askTimeout (config.DefaultAskTimeout) bounds a question to a manager's
// Desk: a where waits at most about a minute for its slowest host, and no
// answer at all means no manager (or only managers older than the Desk)
// serves the queue.
const askTimeout = config.DefaultAskTimeout

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
	desk := temporalclient.Entity{ID: workflows.DeskID(queue), Queue: queue, Workflow: workflows.DeskWorkflowName, State: workflows.DeskState{}}
	_, err := retry.Do(ctx, retry.Policy{First: config.DefaultLocalRetryInterval, Max: config.DefaultRetryMax}, askAgain,
		func() (struct{}, error) {
			return struct{}{}, temporalclient.UpdateWithStart(ctx, c, desk, update, arg, out)
		}, nil)
	switch {
	case err == nil, parent.Err() != nil:
		return err
	case ctx.Err() != nil:
		return noAnswer
	}
	return err
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
