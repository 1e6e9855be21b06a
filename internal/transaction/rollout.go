package transaction

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/workflows"
)

// transactionTypes are the workflow types that are transactions: each has
// the status and detail queries and relman's search attributes.
var transactionTypes = []string{workflows.ReleaseWorkflowName, workflows.RollbackWorkflowName}

const transactionTypesQuery = "WorkflowType IN ('" + workflows.ReleaseWorkflowName + "', '" + workflows.RollbackWorkflowName + "')"

// IsTransactionType reports whether a workflow type is a transaction's.
func IsTransactionType(name string) bool {
	for _, t := range transactionTypes {
		if t == name {
			return true
		}
	}
	return false
}

// StartRollback starts a Rollback transaction of project in env, to the
// release of transaction to (empty: the release before the current one),
// and returns its transaction id, a uuid v7.
func StartRollback(ctx context.Context, c client.Client, queue string, req workflows.Request, to string, sign *Signer) (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	req.Action = workflows.ActionRollback
	in := workflows.RollbackInput{Request: req, To: to}
	if sign != nil {
		in.Signature = sign.Sign(workflows.RollbackStart(u.String(), in).Payload())
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: u.String(), TaskQueue: queue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, TypedSearchAttributes: managerAttribute(queue)},
		workflows.RollbackWorkflowName, in)
	if err != nil {
		return "", fmt.Errorf("start rollback of %s in %s: %w", req.Project, req.Env, err)
	}
	return run.GetID(), nil
}

// Where asks the Desk of the manager on queue what is live on every host
// of env for each named target of project. No workflow execution is
// started for it.
func Where(ctx context.Context, c client.Client, queue, project, env string) (*workflows.WhereResult, error) {
	var res workflows.WhereResult
	if err := ask(ctx, c, queue, workflows.WhereUpdate, workflows.WhereInput{Project: project, Env: env}, &res); err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return nil, fmt.Errorf("where %s runs in %s: %s", project, env, app.Message())
		}
		return nil, fmt.Errorf("where %s runs in %s: %w", project, env, err)
	}
	return &res, nil
}
