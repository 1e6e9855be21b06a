package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relman/relman/internal/transaction"
	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
)

func (a *app) cancelCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "cancel TXID",
		Short: "Cancel a transaction: running build steps and installs are stopped; it ends CANCELLED",
		Long: `Cancel a transaction. Running build steps are killed with their process
group; installs in flight stop before their final swap, so every host keeps
either its previous install or the new one, never a mix. The command waits
until the transaction has ended and prints its final status.`,
		Example: `  relman cancel 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10
  relman cancel 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10 --timeout 2m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			txid := args[0]
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.CancelWorkflow(cmd.Context(), txid, ""); err != nil {
				var nf *serviceerror.NotFound
				if errors.As(err, &nf) {
					return fmt.Errorf("no running transaction %s; it has ended or never existed (see `relman status %s`)", txid, txid)
				}
				return fmt.Errorf("cancel %s: %w", txid, err)
			}
			ctx, stop := context.WithTimeout(cmd.Context(), timeout)
			defer stop()
			d, err := transaction.Wait(ctx, c, txid, nil)
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
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the transaction to end")
	return cmd
}
