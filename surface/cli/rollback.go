package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

func (a *app) rollbackCommand() *cobra.Command {
	var (
		env, to string
		wait    bool
	)
	cmd := &cobra.Command{
		Use:   "rollback PROJECT --env E [--to TXID]",
		Short: "Switch every host back to the previous release (release behavior); prints the transaction id",
		Long: `Roll a project back in an environment: on every host registered for it, each
named target installed with the release behavior switches its current symlink
to the release before the current one, or with --to to the release of that
transaction (which must still be kept on every host). The rollback is a
transaction: status, history and list show it; it ends ROLLBACK_COMPLETED or
ROLLBACK_FAILED.`,
		Example: `  relman rollback template --env test --wait
  relman rollback template --env test --to 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageErr("relman rollback needs --env (for example --env test)")
			}
			txid, waitFor, done, err := a.startRollback(cmd.Context(), args[0], env, to)
			if err != nil {
				return err
			}
			defer done()
			if !wait {
				if a.output == "json" {
					return a.printJSON(map[string]string{"transaction": txid})
				}
				fmt.Fprintln(a.opts.Stdout, txid)
				return nil
			}
			if a.output == "text" {
				fmt.Fprintf(a.opts.Stdout, "transaction %s\n", txid)
			}
			d, err := waitFor(cmd.Context(), txid, nil)
			if err != nil {
				return err
			}
			if err := a.printEnded(txid, d, workflows.ActionRollback); err != nil {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&env, "env", "", "environment to roll back")
	f.StringVar(&to, "to", "", "the transaction whose release to switch to (default: the release before the current one)")
	f.BoolVar(&wait, "wait", false, "wait for the final status; exit 3 unless it is ROLLBACK_COMPLETED")
	return cmd
}

// startRollback starts a rollback, through the manager's API or on
// Temporal, and returns its id, how to wait for it and what to close.
func (a *app) startRollback(ctx context.Context, project, env, to string) (string, waitFunc, func(), error) {
	api, err := a.api()
	if err != nil {
		return "", nil, nil, err
	}
	if api != nil {
		data := map[string]any{"project": project, "env": env}
		if to != "" {
			data["to"] = to
		}
		var txid string
		if err := api.call(ctx, "rollback", &txid, data); err != nil {
			return "", nil, nil, err
		}
		return txid, api.wait, func() {}, nil
	}
	c, err := a.dialToStart(ctx)
	if err != nil {
		return "", nil, nil, err
	}
	req := workflows.Request{Project: project, Action: workflows.ActionRollback, Env: env, Requester: requester(a.opts.LookupEnv)}
	sign, err := a.signer()
	if err != nil {
		c.Close()
		return "", nil, nil, err
	}
	txid, err := transaction.StartRollback(ctx, c, a.queue, req, to, sign)
	if err != nil {
		c.Close()
		return "", nil, nil, err
	}
	return txid, temporalWait(c), c.Close, nil
}
