package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// PlanRelease is the Plan activity as the manager registers it: Plan, plus
// the environment's safety settings (rollout, lock, approval, webhooks),
// with the request's rollout overriding the environment's. A rejection
// carries the environment's webhooks, so it is notified too.
func (m *Manager) PlanRelease(ctx context.Context, in workflows.PlanInput) (workflows.Plan, error) {
	req := in.Request
	if req.Rollout != nil {
		if err := req.Rollout.Validate(); err != nil {
			return workflows.Plan{}, m.withWebhooks(req, rejected("the request's %v", err))
		}
	}
	plan, err := m.Plan(ctx, in)
	if err != nil {
		return plan, m.withWebhooks(req, err)
	}
	env, ok := m.Config.Environments[req.Env]
	if !ok {
		return plan, nil
	}
	plan.Webhooks = slices.Clone(env.Webhooks)
	if req.Action != workflows.ActionInstall {
		return plan, nil
	}
	plan.Rollout = EnvRollout(env).Override(req.Rollout)
	if plan.Rollout.Strategy == workflows.StrategyRolling && plan.Rollout.Batch == "" {
		plan.Rollout.Batch = "1"
	}
	if env.Lock != config.LockOff {
		plan.Lock = env.Lock
	}
	if env.Approval == config.ApprovalRequired {
		plan.Approval = workflows.Approval{Required: true, FourEyes: env.FourEyes, Timeout: env.ApprovalTimeout}
	}
	return plan, nil
}

// EnvRollout is an environment's rollout policy as a release reads it.
func EnvRollout(env config.Environment) workflows.Rollout {
	r := env.Rollout
	return workflows.Rollout{
		Strategy: r.Strategy, Batch: r.Batch, Pause: r.Pause, MaxFailures: r.MaxFailures,
		Unreachable: r.Unreachable, AutoRollback: r.AutoRollback,
	}
}

func (m *Manager) withWebhooks(req workflows.Request, err error) error {
	env, ok := m.Config.Environments[req.Env]
	var app *temporal.ApplicationError
	if !ok || len(env.Webhooks) == 0 || !errors.As(err, &app) || app.Type() != workflows.ErrRejected {
		return err
	}
	return temporal.NewNonRetryableApplicationError(app.Message(), workflows.ErrRejected, nil,
		workflows.PlanRejection{Webhooks: slices.Clone(env.Webhooks)})
}

// Coordinator holds the manager's activities that talk to Temporal and the
// outside world for a release: the locks and the webhooks.
type Coordinator struct {
	Client client.Client
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

// Notify POSTs a release's notification as JSON to one webhook. Anything
// but a 2xx answer is an error, retried by the workflow's policy.
func (c *Coordinator) Notify(ctx context.Context, in workflows.NotifyInput) error {
	body, err := json.Marshal(in.Notification)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("notification: "+err.Error(), "BadNotification", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook %s: %v", in.URL, err), "BadWebhook", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relman")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", in.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", in.URL, resp.Status)
	}
	if c.Log != nil {
		c.Log.Info("webhook notified", "url", in.URL, "transaction", in.Notification.Transaction, "status", in.Notification.Status)
	}
	return nil
}
