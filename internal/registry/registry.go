// Package registry is the client side of a manager's registry: registering
// a builder or installer host, renewing and ending its lease, and reading
// the registrations. The registry is RegistryShards RegistryShard
// workflows (workflows/registryshard.go); a role talks to the shard its id
// hashes to, and a reader reads them all, plus the single Registry workflow
// of earlier versions until its leases have expired.
package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/retry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workflows"
)

// ErrRefused: the registry refused a registration (its id is another
// role's, say); the error's text says why.
var ErrRefused = errors.New("registration refused")

// Registry names one manager's registry: its id (the shards' workflow ids
// start with it) and the queue its workflows run on.
type Registry struct {
	Client       client.Client
	ID           string
	ManagerQueue string
	// Known, when set, keeps each registry workflow's last answer: a read
	// that one of them does not answer uses its last known leases (those
	// still live) rather than none. The manager keeps one for its plans.
	Known *Known
}

// Known is the last answer of each registry workflow read.
type Known struct {
	mu   sync.Mutex
	last map[string][]workflows.Lease
}

func (k *Known) put(id string, ls []workflows.Lease) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil {
		k.last = map[string][]workflows.Lease{}
	}
	k.last[id] = ls
}

func (k *Known) get(id string) ([]workflows.Lease, bool) {
	if k == nil {
		return nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ls, ok := k.last[id]
	return ls, ok
}

// shard is the workflow id of the shard holding id's registrations.
func (g Registry) shard(id string) string {
	return workflows.RegistryShardID(g.ID, workflows.RegistryShardOf(id))
}

// entity is the shard workflow with id shard, started on demand.
func (g Registry) entity(shard string) temporalclient.Entity {
	return temporalclient.Entity{ID: shard, Queue: g.ManagerQueue, Workflow: workflows.RegistryShardWorkflowName, State: workflows.RegistryShardState{}}
}

func (g Registry) startOptions(shard string) client.StartWorkflowOptions {
	return g.entity(shard).StartOptions()
}

// Register registers r, or registers it again with what it advertises now
// (the newest registration wins), and returns its lease once the registry
// holds it. The shard is started on demand (update-with-start), so a fresh
// namespace needs no bootstrap step. An update the server drops because
// its shard was continuing as new at that moment is sent again, so a
// registration never fails for that. A registration the registry refuses
// is an error that says why and matches ErrRefused.
func (g Registry) Register(ctx context.Context, r workflows.Registration) (workflows.Lease, error) {
	return retry.Do(ctx, retry.Policy{First: config.DefaultRetryInterval, Max: config.DefaultRetryMax}, dropped,
		func() (workflows.Lease, error) { return g.register(ctx, r) }, nil)
}

func (g Registry) register(ctx context.Context, r workflows.Registration) (workflows.Lease, error) {
	var l workflows.Lease
	err := temporalclient.UpdateWithStart(ctx, g.Client, g.entity(g.shard(r.ID)), workflows.RegisterUpdate, r, &l)
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() != acceptedUpdateCompletedWorkflow {
			return l, fmt.Errorf("register %s %s with registry %s: %s: %w", r.Role, r.ID, g.ID, app.Message(), ErrRefused)
		}
		return l, fmt.Errorf("register %s %s with registry %s: %w", r.Role, r.ID, g.ID, err)
	}
	return l, nil
}

// ErrOtherManager: the registry runs on the queue of a manager other than
// the one it was named with; two managers were given one registry id.
var ErrOtherManager = errors.New("registry of another manager")

// CheckOwner makes sure the registry is this manager's: a registry (any of
// its shards, or the single registry of earlier versions) already running
// on another manager's queue would mix the two managers' registrations, so
// one manager would plan onto the other's builders and hosts. A registry
// not running yet is anyone's.
func (g Registry) CheckOwner(ctx context.Context) error {
	ids := []string{g.ID}
	for k := range workflows.RegistryShards {
		ids = append(ids, workflows.RegistryShardID(g.ID, k))
	}
	return g.checkOwner(ctx, ids)
}

// CheckShardOwner is CheckOwner for the one shard that holds roleID's
// registration: what a builder or host checks once it registered there.
func (g Registry) CheckShardOwner(ctx context.Context, roleID string) error {
	return g.checkOwner(ctx, []string{g.shard(roleID)})
}

func (g Registry) checkOwner(ctx context.Context, ids []string) error {
	for _, id := range ids {
		d, err := g.Client.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				continue
			}
			return fmt.Errorf("read registry %s: %w", id, err)
		}
		if d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			continue
		}
		if q := d.GetExecutionConfig().GetTaskQueue().GetName(); q != g.ManagerQueue {
			return fmt.Errorf("registry %s is the registry of the manager on queue %s, not of manager %s; each manager needs a registry_id of its own: %w",
				g.ID, q, g.ManagerQueue, ErrOtherManager)
		}
	}
	return nil
}

// acceptedUpdateCompletedWorkflow is the failure type the server gives an
// update whose workflow closed (continued as new) before answering it.
const acceptedUpdateCompletedWorkflow = "AcceptedUpdateCompletedWorkflow"

// dropped reports an update the server did not deliver because its
// workflow was continuing as new (its workflow task failed, the update was
// aborted, or the run closed first): sending it again reaches the next run.
func dropped(err error) bool {
	var notReady *serviceerror.WorkflowNotReady
	var unavailable *serviceerror.Unavailable
	var notFound *serviceerror.NotFound
	var app *temporal.ApplicationError
	return errors.As(err, &notReady) || errors.As(err, &unavailable) || errors.As(err, &notFound) ||
		errors.As(err, &app) && app.Type() == acceptedUpdateCompletedWorkflow
}

// Renew renews r's lease: a signal (signal-with-start) to its shard that
// the server answers once it has stored it, whether or not a manager runs,
// and that registers r again if its lease was lost meanwhile.
func (g Registry) Renew(ctx context.Context, r workflows.Registration) error {
	shard := g.shard(r.ID)
	_, err := g.Client.SignalWithStartWorkflow(ctx, shard, workflows.RegistrySignalName, workflows.RegistrySignal{Renew: &r},
		g.startOptions(shard), workflows.RegistryShardWorkflowName, workflows.RegistryShardState{})
	if err != nil {
		return fmt.Errorf("renew %s %s with registry %s: %w", r.Role, r.ID, g.ID, err)
	}
	return nil
}

// Deregister ends a registration at once, as a worker shuts down: the
// one its run (instance, see workflows.Registration) made, or any when
// instance is empty.
func (g Registry) Deregister(ctx context.Context, role workflows.Role, id, instance string) error {
	err := g.Client.SignalWorkflow(ctx, g.shard(id), "", workflows.RegistrySignalName,
		workflows.RegistrySignal{Deregister: &workflows.DeregisterRequest{Role: role, ID: id, Instance: instance}})
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("deregister %s %s: %w", role, id, err)
	}
	return nil
}

// List returns the registrations whose leases are live at now, sorted by
// role and id: every shard's, and those of the single Registry workflow of
// earlier versions (the newest renewal wins where both hold one). A shard
// or registry that was never started has none. When some of them do not
// answer (one broken, or a workflow under a shard's id that no manager of
// this queue runs), the others' leases come with a *PartialError naming
// them: one bad shard does not stop every plan. When none answers, or no
// manager polls the queue, it is an error alone.
func (g Registry) List(ctx context.Context, now time.Time) ([]workflows.Lease, error) {
	ids := []string{g.ID}
	for k := range workflows.RegistryShards {
		ids = append(ids, workflows.RegistryShardID(g.ID, k))
	}
	parts := make([][]workflows.Lease, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { parts[i], errs[i] = g.read(ctx, id) })
	}
	wg.Wait()
	partial := &PartialError{Registry: g.ID}
	down := 0
	for i, err := range errs {
		if err == nil {
			g.Known.put(ids[i], parts[i])
			continue
		}
		if noPoller(err) {
			down++
		}
		u := Unanswered{ID: ids[i], Err: err}
		parts[i], u.LastKnown = g.Known.get(ids[i])
		partial.Unanswered = append(partial.Unanswered, u)
	}
	switch {
	case len(partial.Unanswered) == 0:
		partial = nil
	case down == len(ids):
		return nil, &ManagerDownError{Queue: g.ManagerQueue, Registry: g.ID, Err: partial.Unanswered[0].Err}
	case len(partial.Unanswered) == len(ids):
		return nil, errors.Join(errs...)
	}
	byKey := map[string]workflows.Lease{}
	for _, part := range parts {
		for _, l := range part {
			if old, ok := byKey[l.Key()]; (!ok || l.Renewed.After(old.Renewed)) && l.Expires.After(now) {
				byKey[l.Key()] = l
			}
		}
	}
	live := make([]workflows.Lease, 0, len(byKey))
	for _, l := range byKey {
		live = append(live, l)
	}
	slices.SortFunc(live, func(a, b workflows.Lease) int {
		switch {
		case a.Key() < b.Key():
			return -1
		case a.Key() > b.Key():
			return 1
		}
		return 0
	})
	if partial != nil {
		return live, partial
	}
	return live, nil
}

// PartialError: some of a registry's workflows did not answer a read; the
// leases that came with it are the others'. Registrations held by those
// that did not answer are missing from them.
type PartialError struct {
	Registry   string
	Unanswered []Unanswered
}

// Unanswered is one registry workflow that did not answer, and why;
// LastKnown: its last answer's leases, those still live, stand in for it.
type Unanswered struct {
	ID        string
	Err       error
	LastKnown bool
}

func (e *PartialError) Error() string {
	var known, missing []string
	for _, u := range e.Unanswered {
		if u.LastKnown {
			known = append(known, u.ID)
		} else {
			missing = append(missing, u.ID)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, strings.Join(missing, ", ")+" did not answer, so the roles registered there are missing")
	}
	if len(known) > 0 {
		parts = append(parts, strings.Join(known, ", ")+" did not answer; their last known leases stand in")
	}
	return fmt.Sprintf("registry %s: %s: %v", e.Registry, strings.Join(parts, "; "), e.Unanswered[0].Err)
}

// IDs are the workflow ids that did not answer.
func (e *PartialError) IDs() []string {
	ids := make([]string, len(e.Unanswered))
	for i, u := range e.Unanswered {
		ids[i] = u.ID
	}
	return ids
}

// Partial returns err's *PartialError when the read was only partial, the
// leases read then being usable; nil otherwise.
func Partial(err error) *PartialError {
	var p *PartialError
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// ManagerDownError: no manager polls the queue the registry's workflows
// run on, so nothing can answer a read of the registrations.
type ManagerDownError struct {
	Queue    string
	Registry string
	Err      error
}

func (e *ManagerDownError) Error() string {
	return fmt.Sprintf("the manager on task queue %s is down: no manager process polls it, so registry %s cannot answer; start one (`relman manager --config manager.yaml` with manager_queue: %s, or `relman dev` for the default), or pass the --manager-queue and --registry-id of a manager that runs",
		e.Queue, e.Registry, e.Queue)
}

func (e *ManagerDownError) Unwrap() error { return e.Err }

// noPoller recognises Temporal's answer to a query no worker polls for:
// "no poller seen for task queue recently, worker may be down".
func noPoller(err error) bool {
	if err == nil {
		return false
	}
	var fp *serviceerror.FailedPrecondition
	return errors.As(err, &fp) && strings.Contains(fp.Error(), "no poller seen") || strings.Contains(err.Error(), "no poller seen for task queue")
}

// read queries one registry workflow; one that does not exist has none.
func (g Registry) read(ctx context.Context, id string) ([]workflows.Lease, error) {
	v, err := g.Client.QueryWorkflow(ctx, id, "", workflows.RegistrationsQuery)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("read registry %s: %w", id, err)
	}
	var ls []workflows.Lease
	if err := v.Get(&ls); err != nil {
		return nil, fmt.Errorf("read registry %s: %w", id, err)
	}
	return ls, nil
}
