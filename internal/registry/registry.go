// Package registry is the client side of the Registry workflow: registering
// and renewing a builder's or installer host's lease, deregistering it, and
// reading the registrations.
package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/workflows"
)

// Registry names one manager's registry: the workflow id and the queue its
// workflow runs on.
type Registry struct {
	Client       client.Client
	ID           string
	ManagerQueue string
}

// Register registers or renews r. The registry workflow is started on demand
// (update-with-start), so a fresh namespace needs no bootstrap step.
func (g Registry) Register(ctx context.Context, r workflows.Registration) (workflows.Lease, error) {
	start := g.Client.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       g.ID,
		TaskQueue:                g.ManagerQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.RegistryWorkflowName, workflows.RegistryState{})
	h, err := g.Client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   workflows.RegisterUpdate,
			Args:         []any{r},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var l workflows.Lease
	if err != nil {
		return l, fmt.Errorf("register %s %s with registry %s: %w", r.Role, r.ID, g.ID, err)
	}
	if err := h.Get(ctx, &l); err != nil {
		return l, fmt.Errorf("register %s %s with registry %s: %w", r.Role, r.ID, g.ID, err)
	}
	return l, nil
}

// ErrOtherManager: the registry runs on the queue of a manager other than
// the one it was named with; two managers were given one registry id.
var ErrOtherManager = errors.New("registry of another manager")

// CheckOwner makes sure the registry is this manager's: a registry already
// running on another manager's queue would mix the two managers'
// registrations, so one manager would plan onto the other's builders and
// hosts. A registry not running yet is anyone's.
func (g Registry) CheckOwner(ctx context.Context) error {
	d, err := g.Client.DescribeWorkflowExecution(ctx, g.ID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("read registry %s: %w", g.ID, err)
	}
	if d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil
	}
	if q := d.GetExecutionConfig().GetTaskQueue().GetName(); q != g.ManagerQueue {
		return fmt.Errorf("registry %s is the registry of the manager on queue %s, not of manager %s; each manager needs a registry_id of its own: %w",
			g.ID, q, g.ManagerQueue, ErrOtherManager)
	}
	return nil
}

// Deregister removes a registration at once, as a worker shuts down.
func (g Registry) Deregister(ctx context.Context, role workflows.Role, id string) error {
	h, err := g.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   g.ID,
		UpdateName:   workflows.DeregisterUpdate,
		Args:         []any{workflows.DeregisterRequest{Role: role, ID: id}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return fmt.Errorf("deregister %s %s: %w", role, id, err)
	}
	return h.Get(ctx, nil)
}

// List returns the registrations whose leases are live at now. A registry
// that was never started has none.
func (g Registry) List(ctx context.Context, now time.Time) ([]workflows.Lease, error) {
	v, err := g.Client.QueryWorkflow(ctx, g.ID, "", workflows.RegistrationsQuery)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("read registry %s: %w", g.ID, err)
	}
	var all []workflows.Lease
	if err := v.Get(&all); err != nil {
		return nil, fmt.Errorf("read registry %s: %w", g.ID, err)
	}
	live := all[:0]
	for _, l := range all {
		if l.Expires.After(now) {
			live = append(live, l)
		}
	}
	return live, nil
}
