package activities

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/workflows"
)

// SignOrders is the SignOrders activity (a local activity of the Release
// workflow): it signs each install order with the manager's order key,
// giving it a fresh id, the manager's namespace and queue, and an expiry
// in.Valid from now. Without a key it signs nothing, and says so once in
// the manager's log at start.
func (m *Manager) SignOrders(_ context.Context, in workflows.SignOrdersInput) (workflows.SignOrdersResult, error) {
	var res workflows.SignOrdersResult
	if m.OrderKey == nil {
		return res, nil
	}
	if in.Valid <= 0 {
		return res, temporal.NewNonRetryableApplicationError("install orders need a validity", "BadOrder", nil)
	}
	expires := m.now().Add(in.Valid).UTC()
	for _, o := range in.Orders {
		o.ID = uuid.NewString()
		o.Namespace = m.Config.Temporal.Namespace
		o.Queue = m.Config.ManagerQueue
		o.Expires = expires
		s, err := auth.SignOrder(m.OrderKey, o)
		if err != nil {
			return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("signing the install order for %s/%s: %v", o.Host, o.Target, err), "BadOrder", nil)
		}
		res.Orders = append(res.Orders, s)
	}
	return res, nil
}

// ErrOrderRefused is the type of the error of an install whose order the
// installer refused; it is never retried.
const ErrOrderRefused = "OrderRefused"

// checkOrder refuses, before anything is touched, an install whose order
// no trusted manager signed for exactly this: this host, its namespace and
// the manager queue the activity came from, the environment, target and
// artifact asked, not expired, and not used by another activity (a
// replayed order). The order is bound to the first activity that presents
// it, by workflow run id and activity id, which Temporal's retries of that
// activity keep: a retry may present it again, anything else may not. The
// used orders are remembered in work_dir/orders.
func (i *Installer) checkOrder(ctx context.Context, in workflows.InstallInput) error {
	t := i.Config.Trust
	// A host that trusts no key checks nothing, as before signed orders
	// (insecure: the installer warns at start); allow (upgrades) runs
	// unsigned orders, while a signed one is still checked.
	if len(t.ManagerKeys) == 0 {
		if in.Order == nil {
			i.logger().Warn("running an unsigned install order (insecure)", "transaction", in.Transaction, "target", in.Target)
		}
		return nil
	}
	keys := make([]ed25519.PublicKey, 0, len(t.ManagerKeys))
	for _, s := range t.ManagerKeys {
		k, err := auth.ParseManagerKey(s)
		if err != nil {
			return refused(fmt.Errorf("trust.manager_keys: %w", err))
		}
		keys = append(keys, k)
	}
	queue, user := i.orderQueue(ctx), "not-an-activity"
	now := time.Now()
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		user = info.WorkflowExecution.RunID + "/" + info.ActivityID
	}
	want := auth.OrderExpect{
		Namespace: i.Config.Temporal.Namespace, Queue: queue, Transaction: in.Transaction,
		Host: i.Config.Host, Env: in.Env, Target: in.Target, Action: workflows.OrderInstall, SHA256: in.Artifact.SHA256,
	}
	if err := auth.VerifyOrder(in.Order, keys, want, now); err != nil {
		return refused(err)
	}
	if err := (auth.Ledger{Dir: filepath.Join(i.Config.WorkDir, "orders")}).Claim(in.Order.Order.ID, user); err != nil {
		return refused(err)
	}
	return nil
}

func refused(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrOrderRefused, nil)
}

// orderQueue is the manager queue whose host queue the activity came in
// on: the one manager the host serves, outside an activity.
func (i *Installer) orderQueue(ctx context.Context) string {
	served := i.Config.Served()
	if activity.IsActivity(ctx) {
		tq := activity.GetInfo(ctx).TaskQueue
		for _, m := range served {
			if workflows.HostQueue(m.ManagerQueue, i.Config.Host) == tq {
				return m.ManagerQueue
			}
		}
		return ""
	}
	if len(served) == 1 {
		return served[0].ManagerQueue
	}
	return ""
}
