package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/behavior"
	"github.com/relman/relman/workflows"
)

// Rollback switches a named target back, through its behavior's Rollback
// (behavior.Rollbacker): to the install of in.To, or to the one before the
// live one. A retry of the same rollback switches to the install it chose
// the first time.
func (i *Installer) Rollback(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	res := workflows.RollbackHostResult{Host: i.Config.Host, Attempt: attempt}
	if err := i.checkOrder(ctx, in.Order, auth.OrderExpect{
		Transaction: in.Transaction, Env: in.Env, Target: in.Target, Action: workflows.OrderRollback, To: in.To,
	}); err != nil {
		return res, err
	}
	ib, b, err := i.target(in.Env, in.Target)
	if err != nil {
		return res, err
	}
	rb, ok := b.(behavior.Rollbacker)
	if !ok {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("host %s installs %s with the %s behavior, which keeps no earlier release; rollback needs the release behavior (behavior: release in the installer config) or one of your own that implements behavior.Rollbacker",
				i.Config.Host, in.Target, ib.Behavior),
			workflows.ErrRollbackUnsupported, nil)
	}
	err = i.withState(in.Env, in.Target, func(st *targetState) (bool, error) {
		to := in.To
		if r := st.Rollback; r != nil && r.Transaction == in.Transaction && in.Transaction != "" {
			to = r.To
		}
		from, now, err := rb.Rollback(ctx, behavior.RollbackRequest{
			Env: in.Env, Target: in.Target, To: to, Config: ib,
			Log: i.logger().With("transaction", in.Transaction, "target", in.Target),
		})
		if err != nil {
			return false, err
		}
		if st.Rollback != nil && st.Rollback.Transaction == in.Transaction {
			from = st.Rollback.From
		}
		res.From, res.To = from, now
		st.Rollback = &rollbackRecord{Transaction: in.Transaction, From: from, To: now}
		return true, nil
	})
	if errors.Is(err, behavior.ErrReleaseNotFound) {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("host %s: %v", i.Config.Host, err), workflows.ErrReleaseNotFound, nil)
	}
	if err != nil {
		return res, fmt.Errorf("host %s: rollback of %s: %w", i.Config.Host, in.Target, err)
	}
	res.Path = ib.Path
	if lr, ok := b.(behavior.LiveReporter); ok {
		if live, err := lr.Live(ib); err == nil && live.Path != "" {
			res.Path = live.Path
		}
	}
	i.logger().Info("rolled back", "transaction", in.Transaction, "target", in.Target, "from", res.From, "to", res.To)
	return res, nil
}
