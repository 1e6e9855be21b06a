package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

func (a *app) cancelCommand() *cobra.Command {
	var (
		timeout time.Duration
		reason  string
	)
	cmd := &cobra.Command{
		Use:   "cancel TXID",
		Short: "Cancel a transaction: running build steps and installs are stopped; it ends CANCELLED",
		Long: `Cancel a transaction. The manager checks who asks (the request is signed with
your token, like a release; through the manager's API, --manager-url, the
gateway checks your token and vouches for you) and that the policy lets
them cancel (action cancel); whoever cancels is recorded in the transaction's detail and
history. Running build steps are killed with their process group; installs
in flight stop before their final swap, so every host keeps either its
previous install or the new one, never a mix. The command waits until the
transaction has ended and prints its final status.`,
		Example: `  relman cancel 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10
  relman cancel 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10 --reason 'wrong branch' --timeout 2m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			txid := args[0]
			api, err := a.api()
			if err != nil {
				return err
			}
			var wait waitFunc
			if api != nil {
				var params []any
				if reason != "" {
					params = []any{reason}
				}
				if err := api.call(cmd.Context(), "cancel_transaction", nil, append([]any{txid}, params...)...); err != nil {
					return fmt.Errorf("cancel of %s refused: %w", txid, err)
				}
				wait = api.wait
			} else {
				by, sign, c, err := a.actAs()
				if err != nil {
					return err
				}
				defer c.Close()
				r := workflows.CancelRequest{By: by, Reason: reason}
				if sign != nil {
					r.Signature = sign.Sign(workflows.CancelPayload(txid, r))
				}
				if _, err := transaction.Cancel(cmd.Context(), c, txid, r); err != nil {
					if errors.Is(err, transaction.ErrCancelRefused) {
						return fmt.Errorf("cancel of %s refused: %w", txid, err)
					}
					return err
				}
				wait = temporalWait(c)
			}
			ctx, stop := context.WithTimeout(cmd.Context(), timeout)
			defer stop()
			d, err := wait(ctx, txid, nil)
			if err != nil {
				return fmt.Errorf("cancel of %s requested, but it has not ended within %s: %w", txid, timeout, err)
			}
			if a.output == "json" {
				return a.printJSON(d)
			}
			fmt.Fprintln(a.opts.Stdout, d.Status)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", config.DefaultCancelWait, "how long to wait for the transaction to end")
	cmd.Flags().StringVar(&reason, "reason", "", "recorded with the cancel")
	return cmd
}
