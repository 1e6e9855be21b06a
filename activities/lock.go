package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workflows"
)

// Coordinator holds the manager's activities that talk to Temporal and the
// outside world for a release: the locks and the webhooks.
type Coordinator struct {
	Client client.Client
	// Config is the manager's: the webhooks a release's references name.
	Config *config.Manager
	// HTTP posts webhooks; nil means a client with a 10s timeout.
	HTTP *http.Client
	Log  *slog.Logger
}

// RequestLock asks the Lock workflow of (env, target) for the lock on
// behalf of a release, starting it if it is not running. The answer comes
// back to the release as a signal.
func (c *Coordinator) RequestLock(ctx context.Context, req workflows.LockRequest) error {
	opts := client.StartWorkflowOptions{
		ID:                    req.Lock,
		TaskQueue:             activity.GetInfo(ctx).TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
	_, err := c.Client.SignalWithStartWorkflow(ctx, req.Lock, workflows.LockRequestSignal, req, opts,
		workflows.LockWorkflowName, workflows.LockState{Env: req.Env, Target: req.Target})
	if err != nil {
		return fmt.Errorf("ask lock %s: %w", req.Lock, err)
	}
	return nil
}

// AcquireLock asks the Lock workflow of (env, target) for the lock on
// behalf of a release, starting it if it is not running, and returns its
// answer: granted, refused, or where the release waits (a later grant
// comes as a signal). It runs as a local activity of the release, so
// asking costs no task queue round trip; asking again is harmless (the
// holder is told it holds the lock, a waiter its place).
func (c *Coordinator) AcquireLock(ctx context.Context, req workflows.LockRequest) (workflows.LockAnswer, error) {
	var a workflows.LockAnswer
	lock := temporalclient.Entity{ID: req.Lock, Queue: activity.GetInfo(ctx).TaskQueue,
		Workflow: workflows.LockWorkflowName, State: workflows.LockState{Env: req.Env, Target: req.Target}}
	if err := temporalclient.UpdateWithStart(ctx, c.Client, lock, workflows.LockAcquireUpdate, req, &a); err != nil {
		// A lock continuing as new or ending idle at that moment drops the
		// update; the retry asks its next run.
		return a, fmt.Errorf("ask lock %s: %w", req.Lock, err)
	}
	return a, nil
}

// ReleaseLock gives a release's lock back, or takes it out of the lock's
// queue: a signal the Lock workflow applies in order with the requests. A
// lock that has ended holds nothing to give back.
func (c *Coordinator) ReleaseLock(ctx context.Context, in workflows.ReleaseLockInput) error {
	err := c.Client.SignalWorkflow(ctx, in.Lock, "", workflows.LockReleaseSignal, workflows.LockRelease{Transaction: in.Transaction})
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("give back lock %s: %w", in.Lock, err)
	}
	return nil
}

// LockHolderOpen reports whether the release holding a lock still runs.
func (c *Coordinator) LockHolderOpen(ctx context.Context, txid string) (bool, error) {
	desc, err := c.Client.DescribeWorkflowExecution(ctx, txid, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, err
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}
