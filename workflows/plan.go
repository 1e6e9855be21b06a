package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/internal/auth"
	"github.com/relman/relman/rollout"
)

// PlanInput is the Plan activity's argument.
type PlanInput struct {
	Request     Request         `json:"request"`
	Transaction string          `json:"transaction,omitempty"`
	Signature   *auth.Signature `json:"signature,omitempty"`
}

// Plan is what the manager found for a request: every named target of the
// project and the hosts that install it in the environment, and the
// environment's rules.
type Plan struct {
	Targets []string            `json:"targets"`
	Hosts   map[string][]string `json:"hosts"` // target -> hosts, sorted
	// Timeouts from the manager's config; the request's own win.
	BuildTimeout   time.Duration `json:"build_timeout,omitempty"`
	InstallTimeout time.Duration `json:"install_timeout,omitempty"`
	HostTimeout    time.Duration `json:"host_timeout,omitempty"`
	// Principal is who the manager found asked, when authentication is on.
	Principal string `json:"principal,omitempty"`
	// HeartbeatTimeout: how long a silent build or install counts as lost.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// The environment's rules; their zero values are the behavior releases
	// had before them, which the saved histories rely on.
	Rollout  rollout.Policy `json:"rollout"`
	Lock     string         `json:"lock,omitempty"` // wait, refuse, or off/empty
	Approval Approval       `json:"approval"`
	Webhooks []string       `json:"webhooks,omitempty"`
}

// hostList is every host of the plan once, sorted.
func (p Plan) hostList() []string {
	var hosts []string
	for _, t := range sortedKeys(p.Hosts) {
		hosts = append(hosts, p.Hosts[t]...)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// PlanRejection rides as the details of a Rejected plan error, so a release
// rejected at planning still notifies its environment's webhooks.
type PlanRejection struct {
	Webhooks []string `json:"webhooks,omitempty"`
}

// PlanOnlyResult is what `relman plan` shows: the plan and its batches.
type PlanOnlyResult struct {
	Request Request    `json:"request"`
	Plan    Plan       `json:"plan"`
	Batches [][]string `json:"batches,omitempty"`
}

// PlanOnly answers `relman plan`: it runs the Plan activity on the manager
// for a request, as a release would, and returns the plan with its
// batches, doing nothing else.
func PlanOnly(ctx workflow.Context, in PlanInput) (*PlanOnlyResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{ErrRejected},
		},
	})
	if in.Transaction == "" {
		in.Transaction = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	var plan Plan
	if err := workflow.ExecuteActivity(ctx, PlanActivity, in).Get(ctx, &plan); err != nil {
		return nil, err
	}
	res := &PlanOnlyResult{Request: in.Request, Plan: plan}
	if in.Request.Action != ActionBuild {
		res.Batches = plan.Rollout.Batches(plan.hostList())
	}
	return res, nil
}
