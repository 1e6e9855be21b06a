package activities

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/workflows"
)

// ErrOrderRefused is the type of the error of an install or rollback whose
// order the installer refused; it is never retried.
const ErrOrderRefused = "OrderRefused"

// checkOrder refuses, before anything is touched, an order to this host
// that no trusted manager signed for exactly this: this host, its
// namespace and the manager queue the activity came from, the transaction,
// environment, target, action and artifact (or rollback target) asked, not
// expired, and not used by another activity (a replayed order). The order
// is bound to the first activity that presents it, by workflow run id and
// activity id, which Temporal's retries of that activity keep: a retry may
// present it again, anything else may not. The used orders are remembered
// in work_dir/orders. Every refusal is logged at warn and is a
// non-retryable ErrOrderRefused error saying what failed.
func (i *Installer) checkOrder(ctx context.Context, order *auth.SignedOrder, want auth.OrderExpect) error {
	want.Namespace, want.Queue, want.Host = i.Config.Temporal.Namespace, i.orderQueue(ctx), i.Config.Host
	err := i.verifyOrder(ctx, order, want)
	if err != nil {
		i.logger().Warn("order refused", "transaction", want.Transaction, "env", want.Env, "target", want.Target, "action", want.Action, "reason", err.Error())
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("host %s: %v", i.Config.Host, err), ErrOrderRefused, nil)
	}
	return nil
}

func (i *Installer) verifyOrder(ctx context.Context, order *auth.SignedOrder, want auth.OrderExpect) error {
	if order == nil || order.Signature == "" {
		// Refused as unsigned whatever the keys.
		return auth.VerifyOrder(nil, nil, want, time.Now())
	}
	keys, err := i.trustedKeys()
	if err != nil {
		return err
	}
	if err := auth.VerifyOrder(order, keys, want, time.Now()); err != nil {
		return err
	}
	user := "not-an-activity"
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		user = info.WorkflowExecution.RunID + "/" + info.ActivityID
	}
	return i.ledger().Claim(order.Order.ID, user, order.Order.Expires)
}

// ledger is the host's record of the orders it ran (work_dir/orders).
func (i *Installer) ledger() auth.Ledger {
	return auth.Ledger{Dir: filepath.Join(i.Config.WorkDir, "orders")}
}

// PruneOrders forgets the orders that have expired: the installer calls it
// as it starts, so the ledger holds only orders that could still come.
func (i *Installer) PruneOrders(now time.Time) (int, error) {
	return i.ledger().Prune(now)
}

// trustedKeys are the manager keys this host trusts: trust.manager_keys
// and the keys in trust.manager_key_files, read now, so a key file the
// manager wrote after the installer started, or a rotated key, counts.
// A file that cannot be read is named in the refusal.
func (i *Installer) trustedKeys() ([]ed25519.PublicKey, error) {
	t := i.Config.Trust
	keys := make([]ed25519.PublicKey, 0, len(t.ManagerKeys)+len(t.ManagerKeyFiles))
	for n, s := range t.ManagerKeys {
		k, err := auth.ParseManagerKey(s)
		if err != nil {
			return nil, &auth.OrderError{Field: "trust", Msg: fmt.Sprintf("trust.manager_keys[%d]: %v", n, err)}
		}
		keys = append(keys, k)
	}
	for _, f := range t.ManagerKeyFiles {
		k, err := auth.ReadManagerKeyFile(f)
		if err != nil {
			return nil, &auth.OrderError{Field: "trust", Msg: err.Error() + "; fix the file (the manager writes it beside its orders_key_file at start) or the installer config"}
		}
		keys = append(keys, k)
	}
	return keys, nil
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
