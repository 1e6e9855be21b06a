package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// decisionCommand is `relman approve` or `relman reject`: the decision on a
// release awaiting approval, taken as the caller (RELMAN_REQUESTER, then
// USER).
func (a *app) decisionCommand(approve bool) *cobra.Command {
	var comment string
	use, short, flag := "reject TXID", "Reject a release awaiting approval; it ends REJECTED", "reason"
	if approve {
		use, short, flag = "approve TXID", "Approve a release awaiting approval; it goes on to install", "comment"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.
You decide as RELMAN_REQUESTER (or USER), signed with your token; through the
manager's API (--manager-url) as the user of your token. In an environment
with four_eyes, whoever requested a release cannot approve it.`,
		Example: fmt.Sprintf("  relman %s 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10 --%s 'checked the diff'", decisionVerb(approve), flag),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			by, msg, err := a.decide(cmd.Context(), args[0], approve, comment)
			if err != nil {
				return err
			}
			if a.output == "json" {
				out := map[string]string{"transaction": args[0], "result": msg}
				if by != "" {
					// Over the manager's API with a token the manager
					// knows who; the CLI does not.
					out["by"] = by
				}
				return a.printJSON(out)
			}
			fmt.Fprintln(a.opts.Stdout, msg)
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, flag, "", "recorded with the decision")
	return cmd
}

func decisionVerb(approve bool) string {
	if approve {
		return "approve"
	}
	return "reject"
}

// decide approves or rejects txid, through the manager's API (as the user
// of the token) or on Temporal (as RELMAN_REQUESTER, signed with the
// token); it returns who decided, as far as the CLI knows, and the answer.
func (a *app) decide(ctx context.Context, txid string, approve bool, comment string) (string, string, error) {
	api, err := a.api()
	if err != nil {
		return "", "", err
	}
	if api != nil {
		params := []any{txid}
		if comment != "" {
			params = append(params, comment)
		}
		var msg string
		err := api.call(ctx, decisionVerb(approve)+"_transaction", &msg, params...)
		by, _ := api.cred["username"].(string)
		return by, msg, err
	}
	by, sign, c, err := a.actAs()
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	d := workflows.ApprovalDecision{By: by, Comment: comment}
	if sign != nil {
		d.Signature = sign.Sign(workflows.DecisionPayload(txid, approve, d))
	}
	msg, err := transaction.Decide(ctx, c, txid, approve, d)
	return by, msg, err
}
