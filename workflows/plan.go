package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/rollout"
)

// PlanInput is the Plan activity's argument.
type PlanInput struct {
	Request     Request         `json:"request"`
	Transaction string          `json:"transaction,omitempty"`
	Signature   *auth.Signature `json:"signature,omitempty"`
	// Workflow is the workflow that plans (Release, PlanOnly; empty is
	// Release), and the timeouts those of its input: with the request and
	// the transaction id they are what the signature covers (SignedStart).
	Workflow       string        `json:"workflow,omitempty"`
	BuildTimeout   time.Duration `json:"build_timeout,omitempty"`
	InstallTimeout time.Duration `json:"install_timeout,omitempty"`
	HostTimeout    time.Duration `json:"host_timeout,omitempty"`
	// RunID and RunStarted are the workflow run's, from Temporal: the
	// signature must have been good when the run started, and no other run
	// of the transaction id may exist.
	RunID      string    `json:"run_id,omitempty"`
	RunStarted time.Time `json:"run_started,omitempty"`
}

// Signed is what the request's signature must cover.
func (in PlanInput) Signed() SignedStart {
	w := in.Workflow
	if w == "" {
		w = ReleaseWorkflowName
	}
	return SignedStart{Workflow: w, Transaction: in.Transaction, Request: in.Request,
		BuildTimeout: in.BuildTimeout, InstallTimeout: in.InstallTimeout, HostTimeout: in.HostTimeout}
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
	// Signer is the verified signer (Detail.Signer).
	Signer string `json:"signer,omitempty"`
	// HeartbeatTimeout: how long a silent build or install counts as lost.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// The environment's rules; their zero values are the behavior releases
	// had before them, which the saved histories rely on.
	Rollout rollout.Policy `json:"rollout"`
	Lock    string         `json:"lock,omitempty"` // wait, refuse, or off/empty
	// LockTimeout bounds a wait for the lock; zero: config.DefaultLockTimeout.
	LockTimeout time.Duration `json:"lock_timeout,omitempty"`
	Approval    Approval      `json:"approval"`
	// Hooks name the environment's webhooks; Webhooks are their URLs, as
	// plans made before hooks carried them (never again: a URL may hold a
	// secret, and a plan stays in the history).
	Hooks    []WebhookRef `json:"hooks,omitempty"`
	Webhooks []string     `json:"webhooks,omitempty"`
	// Unanswered are the registry workflows that did not answer the plan's
	// read: roles registered there are not in it.
	Unanswered []string `json:"unanswered,omitempty"`
}

// unansweredEvent says, for a transaction's log, that some of the registry
// did not answer and who may be missing because of it.
func unansweredEvent(ids []string) string {
	return fmt.Sprintf("registry %s did not answer: the hosts and builders registered there are those of its last answer still leased, or none", strings.Join(ids, ", "))
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
	Hooks    []WebhookRef `json:"hooks,omitempty"`
	Webhooks []string     `json:"webhooks,omitempty"`
	// Requester is who asked as far as the manager could tell: the
	// authenticated principal, the claimed name with authentication off,
	// empty when the request did not authenticate. Signer likewise.
	Requester string `json:"requester,omitempty"`
	Signer    string `json:"signer,omitempty"`
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
//
// `relman plan` asks the manager's Desk now (desk.go); PlanOnly stays
// registered so the executions it ran still replay.
func PlanOnly(ctx workflow.Context, in PlanInput) (*PlanOnlyResult, error) {
	// What the signature must cover is this workflow's own id and type,
	// whatever the input says.
	info := workflow.GetInfo(ctx)
	in.Transaction = info.WorkflowExecution.ID
	in.Workflow = PlanOnlyWorkflowName
	in.RunID, in.RunStarted = info.WorkflowExecution.RunID, info.WorkflowStartTime
	return planOnly(ctx, in)
}

// planOnly runs the Plan activity for a request and adds its batches: the
// plan a release would follow, and nothing done.
func planOnly(ctx workflow.Context, in PlanInput) (*PlanOnlyResult, error) {
	ctx = withShortActivity(ctx, config.DefaultManagerActivityTimeout, config.DefaultReadAttempts, ErrRejected)
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
