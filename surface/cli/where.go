package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

func (a *app) whereCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "where PROJECT --env E",
		Short: "Show which transaction is live on each host for every named target of a project",
		Example: `  relman where template --env test
  relman where template --env test --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageErr("relman where needs --env (for example --env test)")
			}
			res, err := a.where(cmd.Context(), args[0], env)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			return writeWhere(a.opts.Stdout, res)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment to look at")
	return cmd
}

// where asks which transaction is live where, through the manager's API or
// on Temporal.
func (a *app) where(ctx context.Context, project, env string) (*workflows.WhereResult, error) {
	return apiOrTemporal(a, func(api *apiClient) (*workflows.WhereResult, error) {
		return api.where(ctx, project, env)
	}, func(c client.Client) (*workflows.WhereResult, error) {
		return transaction.Where(ctx, c, a.queue, project, env)
	})
}

// writeWhere writes which transaction is live on each host and target, and
// why a host did not answer.
func writeWhere(w io.Writer, res *workflows.WhereResult) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tTARGET\tTRANSACTION\tINSTALLED-AT")
	for _, h := range res.HostNames() {
		if msg, ok := res.Errors[h]; ok {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\n", h, msg)
			continue
		}
		targets := slices.Sorted(maps.Keys(res.Hosts[h]))
		for _, t := range targets {
			li := res.Hosts[h][t]
			tx, at := li.Transaction, ""
			if tx == "" {
				tx = "-"
			}
			if !li.InstalledAt.IsZero() {
				at = li.InstalledAt.Local().Format(time.DateTime)
			}
			if li.Error != "" {
				at = "error: " + li.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h, t, tx, at)
		}
	}
	return tw.Flush()
}
